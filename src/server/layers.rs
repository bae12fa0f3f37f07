//! The server's own middleware as plain tower layers: the origin and auth
//! checks, the gRPC-Web switch and the one-message rule.
//!
//! axum's `from_fn` middleware clones the whole route stack beneath it and
//! boxes a future on every request; with four of them, that was a fifth of
//! the network's CPU per command (docs/benchmarks.md, "Issue 11: the
//! middleware, the idle watch and the load generator's share"). These call
//! the service beneath directly, and a check that passes adds no future of
//! its own. What each one decides stays in its module ([`super::auth`],
//! [`super::origin`], [`super::limits`]). Runs on tokio workers.

use std::{
    convert::Infallible,
    future::{Ready, ready},
    ops::ControlFlow,
    sync::Arc,
    task::{Context, Poll},
};

use axum::{
    Router,
    extract::Request,
    http::{Version, header::CONTENT_TYPE},
    response::Response,
};
use futures_util::future::{BoxFuture, Either};
use tower::{Layer, Service, ServiceExt, util::Oneshot};

use super::limits;

/// A rule every request meets before its handler runs.
pub trait Check: Send + Sync + 'static {
    /// Lets `request` continue, perhaps with something added to it (the
    /// caller's principal), or breaks off with the refusal to answer.
    fn check(&self, request: &mut Request) -> ControlFlow<Response>;
}

/// Puts a [`Check`] in front of a service.
pub struct CheckLayer<C>(Arc<C>);

impl<C> CheckLayer<C> {
    /// A layer checking every request with `check`.
    pub fn new(check: Arc<C>) -> Self {
        Self(check)
    }
}

impl<C> Clone for CheckLayer<C> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<C, S> Layer<S> for CheckLayer<C> {
    type Service = Checked<C, S>;

    fn layer(&self, inner: S) -> Self::Service {
        Checked {
            check: Arc::clone(&self.0),
            inner,
        }
    }
}

/// A service behind a [`Check`].
pub struct Checked<C, S> {
    check: Arc<C>,
    inner: S,
}

impl<C, S: Clone> Clone for Checked<C, S> {
    fn clone(&self) -> Self {
        Self {
            check: Arc::clone(&self.check),
            inner: self.inner.clone(),
        }
    }
}

impl<C, S> Service<Request> for Checked<C, S>
where
    C: Check,
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response, Infallible>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        match self.check.check(&mut request) {
            ControlFlow::Continue(()) => Either::Right(self.inner.call(request)),
            ControlFlow::Break(refusal) => Either::Left(ready(Ok(refusal))),
        }
    }
}

/// Sends plain gRPC (HTTP/2, `application/grpc…` but not
/// `application/grpc-web…`) straight on and everything else to `web`, the
/// same routes behind tonic-web, which translates gRPC-Web and refuses what
/// is neither. Passing plain gRPC through tonic-web would still wrap every
/// response in two more boxed bodies, which every telemetry message crossed.
#[derive(Clone)]
pub struct PlainOrWebLayer {
    web: Router,
}

impl PlainOrWebLayer {
    /// Non-plain requests go to `web`.
    pub fn new(web: Router) -> Self {
        Self { web }
    }
}

impl<S> Layer<S> for PlainOrWebLayer {
    type Service = PlainOrWeb<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PlainOrWeb {
            web: self.web.clone(),
            inner,
        }
    }
}

/// The service [`PlainOrWebLayer`] makes.
#[derive(Clone)]
pub struct PlainOrWeb<S> {
    web: Router,
    inner: S,
}

impl<S> Service<Request> for PlainOrWeb<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<S::Future, Oneshot<Router, Request>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if is_plain_grpc(&request) {
            Either::Left(self.inner.call(request))
        } else {
            Either::Right(self.web.clone().oneshot(request))
        }
    }
}

/// HTTP/2 with an `application/grpc…` content type that is not gRPC-Web.
fn is_plain_grpc(request: &Request) -> bool {
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    request.version() == Version::HTTP_2
        && content_type.starts_with("application/grpc")
        && !content_type.starts_with("application/grpc-web")
}

/// Holds a `WatchtowerService` request to one message
/// ([`limits::one_message`]); other paths pass straight on.
#[derive(Debug, Clone, Copy, Default)]
pub struct OneMessageLayer;

impl<S> Layer<S> for OneMessageLayer {
    type Service = OneMessage<S>;

    fn layer(&self, inner: S) -> Self::Service {
        OneMessage { inner }
    }
}

/// The service [`OneMessageLayer`] makes.
#[derive(Debug, Clone)]
pub struct OneMessage<S> {
    inner: S,
}

impl<S> Service<Request> for OneMessage<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<S::Future, BoxFuture<'static, Result<Response, Infallible>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if !limits::holds_one_message(&request) {
            return Either::Left(self.inner.call(request));
        }
        // The body is read before the call, so the service made ready
        // goes with the future and a fresh clone stays for the next call.
        let fresh = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, fresh);
        Either::Right(Box::pin(async move {
            match limits::one_message(request).await {
                Ok(request) => ready.call(request).await,
                Err(refusal) => Ok(refusal),
            }
        }))
    }
}
