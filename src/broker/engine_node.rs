//! The engine node's side of the broker, three tokio tasks started by
//! [`start`] next to the server stack:
//! - `publish_snapshots` follows the hub and publishes each frame's bytes,
//!   the same encoding local subscribers get (no second encode). The hub's
//!   `watch` keeps only the newest frame, so a slow broker makes this task
//!   skip frames, never queue them; while the broker is down, or a publish
//!   does not go through within [`PUBLISH_TIMEOUT`], the frame is dropped
//!   and counted. The engine thread never waits on any of it.
//! - `answer_catalogue` answers a relay's request for the run id and
//!   parameter schema;
//! - `answer_commands` submits each forwarded command through the same
//!   [`WatchtowerApi`] calls a local caller's command takes (role, limits,
//!   rate, queue share, audit log health, deadline), and answers with the
//!   result or with the status a local caller would get. A forwarded audit
//!   query is read from this node's log the way a local one is.

use std::{sync::Arc, time::Duration};

use futures_util::StreamExt;
use prost::Message;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{
    Broker, BrokerError,
    envelope::{Answer, Catalogue, Forward, Kind},
};
use crate::{
    bridge::PendingReply,
    server::{
        TelemetryHub, WatchtowerApi,
        auth::{Principal, Role},
        error::ApiError,
        metrics,
        service::{Caller, await_reply},
    },
};

/// How long one snapshot may take to enter the client's outgoing buffer
/// before it is dropped for the next one.
pub const PUBLISH_TIMEOUT: Duration = Duration::from_millis(100);

/// Starts publishing `api`'s snapshots and answering relays, until
/// `shutdown`.
pub fn start(
    broker: Broker,
    api: WatchtowerApi,
    catalogue: Catalogue,
    shutdown: CancellationToken,
) {
    tokio::spawn(publish_snapshots(
        broker.clone(),
        api.hub().clone(),
        shutdown.clone(),
    ));
    tokio::spawn(log_failure(answer_catalogue(
        broker.clone(),
        catalogue,
        shutdown.clone(),
    )));
    tokio::spawn(log_failure(answer_commands(broker, api, shutdown)));
}

async fn log_failure(task: impl Future<Output = Result<(), BrokerError>>) {
    if let Err(err) = task.await {
        warn!(%err, "the broker task stopped");
    }
}

/// Publishes every frame the hub makes, latest wins, counting each as
/// published or dropped; one log line when publishing starts failing while
/// connected, one when it works again (a lost connection is logged by
/// [`super::connect`]).
async fn publish_snapshots(broker: Broker, hub: TelemetryHub, shutdown: CancellationToken) {
    let mut frames = hub.follow();
    let mut failing = false;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            changed = frames.changed() => if changed.is_err() { return },
        }
        let Some(frame) = frames.borrow_and_update().clone() else {
            continue;
        };
        if !broker.is_connected() {
            metrics::broker_snapshot(false);
            continue;
        }
        let publish = broker
            .client
            .publish(broker.subjects.snapshot.clone(), frame.grpc.bytes());
        let published = matches!(
            tokio::time::timeout(PUBLISH_TIMEOUT, publish).await,
            Ok(Ok(()))
        );
        metrics::broker_snapshot(published);
        if published == failing {
            failing = !published;
            if failing {
                warn!(
                    tick = frame.tick(),
                    "cannot publish snapshots to the broker; dropping them until it takes them again"
                );
            } else {
                debug!(
                    tick = frame.tick(),
                    "publishing snapshots to the broker again"
                );
            }
        }
    }
}

/// Answers every catalogue request with the run id and parameter schema.
async fn answer_catalogue(
    broker: Broker,
    catalogue: Catalogue,
    shutdown: CancellationToken,
) -> Result<(), BrokerError> {
    let mut requests = broker.subscribe(&broker.subjects.catalogue).await?;
    let encoded = prost::bytes::Bytes::from(catalogue.encode_to_vec());
    while let Some(request) = next(&mut requests, &shutdown).await {
        if let Some(reply) = request.reply {
            let _ = broker.client.publish(reply, encoded.clone()).await;
        }
    }
    Ok(())
}

/// Answers each forwarded command on a task of its own, so one waiting for
/// its tick does not hold up the others.
async fn answer_commands(
    broker: Broker,
    api: WatchtowerApi,
    shutdown: CancellationToken,
) -> Result<(), BrokerError> {
    let mut requests = broker.subscribe(&broker.subjects.command).await?;
    let api = Arc::new(api);
    while let Some(request) = next(&mut requests, &shutdown).await {
        let Some(reply) = request.reply else { continue };
        let (broker, api) = (broker.clone(), Arc::clone(&api));
        tokio::spawn(async move {
            let answer = match Forward::decode(request.payload) {
                Ok(forward) => answer(&api, forward).await,
                Err(err) => Answer::refused(
                    ApiError::InvalidField {
                        field: "envelope",
                        value: err.to_string(),
                        allowed: "a forwarding envelope from a Watchtower relay of this version",
                    }
                    .to_remote(),
                ),
            };
            let _ = broker
                .client
                .publish(reply, answer.encode_to_vec().into())
                .await;
        });
    }
    Ok(())
}

async fn next(
    requests: &mut async_nats::Subscriber,
    shutdown: &CancellationToken,
) -> Option<async_nats::Message> {
    tokio::select! {
        () = shutdown.cancelled() => None,
        message = requests.next() => message,
    }
}

/// Submits `forward` as its caller and waits for the verdict.
async fn answer(api: &WatchtowerApi, forward: Forward) -> Answer {
    let caller = Caller {
        principal: Principal {
            name: Arc::from(forward.principal.as_str()),
            role: if forward.operator {
                Role::Operator
            } else {
                Role::Observer
            },
        },
        connection: forward.connection,
        deadline: forward.deadline(),
    };
    let deadline = caller.deadline;
    let result = match forward.kind() {
        Kind::Command => match forward.commands.into_iter().next() {
            Some(command) => settle(api.submit(command, false, &caller), deadline)
                .await
                .map(|r| responses(vec![r])),
            None => Err(ApiError::MissingField { field: "command" }),
        },
        Kind::Batch => settle(
            api.submit_batch(forward.commands, forward.validate_only, &caller),
            deadline,
        )
        .await
        .map(responses),
        Kind::Cancel => settle(api.cancel_scheduled(forward.command_id, &caller), deadline)
            .await
            .map(|r| responses(vec![r])),
        Kind::Revert => settle(api.revert(forward.command_id, &caller), deadline)
            .await
            .map(|r| responses(vec![r])),
        Kind::ListScheduled => {
            settle(api.list_scheduled(&caller), deadline)
                .await
                .map(|scheduled| Answer {
                    scheduled,
                    ..Answer::default()
                })
        }
        Kind::Control => match forward.control.and_then(|c| c.action) {
            Some(action) => settle(api.control(action, &caller), deadline)
                .await
                .map(|control| Answer {
                    control: Some(control),
                    ..Answer::default()
                }),
            None => Err(ApiError::MissingField { field: "action" }),
        },
        Kind::ListAudit => api
            .audit_page(forward.audit.unwrap_or_default(), &caller)
            .await
            .map(|page| Answer {
                audit: Some(page),
                ..Answer::default()
            }),
        Kind::Unspecified => Err(ApiError::MissingField { field: "kind" }),
    };
    result.unwrap_or_else(|err| Answer::refused(err.to_remote()))
}

async fn settle<T>(
    submitted: Result<PendingReply<T>, ApiError>,
    deadline: Option<std::time::Instant>,
) -> Result<T, ApiError> {
    await_reply(submitted?, deadline).await
}

fn responses(responses: Vec<crate::pb::GodResponse>) -> Answer {
    Answer {
        responses,
        ..Answer::default()
    }
}
