//! `SubscribeTelemetry` over gRPC (and gRPC-Web, which wraps it), with each
//! snapshot sent as the bytes the hub framed once: one shared [`Bytes`] per
//! DATA frame, no copy and no per-stream encode buffer.
//!
//! tonic's generated handler would encode every message into a buffer of
//! its own per stream: a copy of each snapshot per subscriber, and a buffer
//! of 8 KiB that each idle subscriber holds. This route takes the method's
//! path ahead of the generated one, decodes the request with tonic's own
//! decoder, calls the same [`WatchtowerService::subscribe_telemetry`], and
//! streams its frames as they are, then the status as trailers, as tonic
//! does. Every layer around the gRPC routes (the one-message check, the
//! auth guard, gRPC-Web, CORS, the origin guard, the access log) still
//! applies.

use std::{
    pin::Pin,
    task::{Context, Poll, ready},
};

use axum::{
    extract::Request as HttpRequest,
    http::{self, HeaderMap, HeaderValue, header::CONTENT_TYPE},
    response::Response as HttpResponse,
    routing::{MethodRouter, post},
};
use futures_util::StreamExt;
use hyper::body::Frame;
use prost::bytes::Bytes;
use tonic::{Request, Status, codec::Codec, codec::Streaming};

use super::{
    encoded::watchtower_service_server::WatchtowerService,
    error::ApiError,
    limits,
    service::{TelemetryStream, WatchtowerApi},
};
use crate::pb::SubscribeTelemetryRequest;

/// The method this route serves.
pub const PATH: &str = "/watchtower.v1.WatchtowerService/SubscribeTelemetry";

/// The route for [`PATH`].
pub fn route(api: WatchtowerApi) -> MethodRouter {
    post(move |request: HttpRequest| subscribe(api.clone(), request))
}

async fn subscribe(api: WatchtowerApi, request: HttpRequest) -> HttpResponse {
    let response = match decode(request).await {
        Ok(request) => api.subscribe_telemetry(request).await,
        Err(status) => Err(status),
    };
    match response {
        Ok(response) => {
            let (metadata, stream, _) = response.into_parts();
            let mut http = HttpResponse::new(axum::body::Body::new(FramedBody(Some(stream))));
            *http.headers_mut() = metadata.into_headers();
            http.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
            http
        }
        Err(status) => status.into_http(),
    }
}

/// The request message, decoded as tonic's handler would (the one-message
/// layer has already read the body and counted exactly one message).
async fn decode(request: HttpRequest) -> Result<Request<SubscribeTelemetryRequest>, Status> {
    let (parts, body) = request.into_parts();
    let decoder = tonic_prost::ProstCodec::<(), SubscribeTelemetryRequest>::default().decoder();
    let mut messages = Streaming::new_request(decoder, body, None, Some(limits::MAX_REQUEST_BYTES));
    let message = messages.message().await?.ok_or(ApiError::NoMessage)?;
    Ok(Request::from_http(http::Request::from_parts(
        parts, message,
    )))
}

/// A gRPC response body: each frame's bytes, then the stream's status as
/// trailers.
struct FramedBody(Option<TelemetryStream>);

impl hyper::body::Body for FramedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let Some(stream) = self.0.as_mut() else {
            return Poll::Ready(None);
        };
        let status = match ready!(stream.poll_next_unpin(cx)) {
            Some(Ok(telemetry)) => {
                return Poll::Ready(Some(Ok(Frame::data(telemetry.into_grpc_message()))));
            }
            Some(Err(status)) => status,
            None => Status::ok(""),
        };
        self.0 = None;
        Poll::Ready(Some(Ok(Frame::trailers(trailers(&status)))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_none()
    }
}

/// `grpc-status`, `grpc-message` and the details, as tonic writes them.
fn trailers(status: &Status) -> HeaderMap {
    let mut map = HeaderMap::new();
    if let Err(unwritable) = status.add_header(&mut map) {
        // Only a status whose details cannot be headers gets here; send
        // the one tonic made about that instead.
        map.clear();
        let _ = unwritable.add_header(&mut map);
    }
    map
}
