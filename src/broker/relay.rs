//! `watchtower relay`: the public API with no engine behind it, fed from the
//! broker.
//!
//! A relay builds the same server stack as an engine node
//! ([`FrontPlan`]: auth, origins, limits, hub, gRPC, gRPC-Web, WebSockets,
//! dashboard) over two local bridge halves:
//! - a [`TelemetryExchange`](crate::bridge::telemetry_exchange) fed by a
//!   task that decodes each snapshot from the broker, so the local hub
//!   encodes it once for all of this relay's subscribers and keeps its own
//!   history ring;
//! - a [`CommandQueue`](crate::bridge::command_queue) whose receiver is
//!   drained by the forwarder, a thread of its own (the receiver's wait is
//!   blocking), which hands each item to a tokio task that forwards it by
//!   request-reply and completes its reply with the engine node's answer.
//!
//! Audit queries are read from the engine node's log by request-reply, not
//! queued. The run id and parameter catalogue are asked for at start, and
//! again when a snapshot shows that the engine node runs another run.
//!
//! While the broker is down the relay keeps serving its last snapshot,
//! answers commands UNAVAILABLE at once and reports NOT_SERVING; it recovers
//! when async-nats reconnects. It keeps nothing worth saving: it can be
//! killed and started at any time.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::Duration,
};

use arc_swap::ArcSwap;

use futures_util::{FutureExt, StreamExt, future::BoxFuture};
use prost::Message;
use tokio::{net::TcpListener, runtime::Handle};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{
    Broker, BrokerError,
    envelope::{Answer, Catalogue, Forward},
};
use crate::{
    app::{Backend, Front, FrontPlan, StartError},
    bridge::{
        CommandReceiver, CommandSender, QueuedCommand, ReplyError, Request, TelemetryPublisher,
        command_queue, telemetry_exchange,
    },
    config::Config,
    pb::{self, ListAuditEntriesRequest, ListAuditEntriesResponse},
    server::{AuditSource, RemoteAudit, RunView, error::ApiError, metrics, service::Caller},
    store::LogHealth,
};

/// How long one catalogue request waits before it is asked again.
const CATALOGUE_RETRY: Duration = Duration::from_millis(500);

/// A running relay.
#[derive(Debug)]
pub struct Relay {
    /// The server stack.
    front: Front,
    /// Our own sender, so `stop` can close the queue and end the forwarder.
    commands: CommandSender,
    /// The forwarder thread, joined by `stop`.
    forwarder: Option<thread::JoinHandle<()>>,
}

impl Relay {
    /// Connects to `config`'s broker, waits for the engine node's catalogue,
    /// and serves on `listener`.
    pub async fn start(listener: TcpListener, config: &Config) -> Result<Self, StartError> {
        if config.broker.urls.is_empty() {
            return Err(BrokerError::NoBroker.into());
        }
        let plan = FrontPlan::prepare(listener, config).await?;
        let broker = super::connect(&config.broker, "relay").await?;
        let catalogue = fetch_catalogue(&broker).await;
        let subscription = broker.subscribe(&broker.subjects.snapshot).await?;
        let (commands, receiver) = command_queue(config.queue_capacity);
        let (publisher, telemetry) = telemetry_exchange();
        let forwarder = Arc::new(Forwarder {
            broker: broker.clone(),
            timeout: config.broker.request_timeout,
            // The low half of a random id: unique enough among a few relays.
            relay_id: uuid::Uuid::new_v4().as_u128() as u32,
        });
        let runtime = Handle::current();
        let audit = AuditSource::Remote(forwarder.clone());
        let forwarder = thread::Builder::new()
            .name("watchtower-forwarder".into())
            .spawn(move || forwarder.run(&receiver, &runtime))?;
        let catalogue = catalogue.shared();
        let front = plan.start(Backend {
            commands: commands.clone(),
            telemetry,
            run: RunView {
                catalogue: catalogue.clone(),
                health: LogHealth::always_ok(),
                losses: None,
                audit,
            },
            upstream: Some(broker.connected.clone()),
        });
        tokio::spawn(follow_snapshots(
            subscription,
            publisher,
            CatalogueRefresh {
                broker,
                catalogue,
                asking: Arc::default(),
            },
            front.shutdown().clone(),
        ));
        Ok(Self {
            front,
            commands,
            forwarder: Some(forwarder),
        })
    }

    /// The address the relay listens on.
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.front.local_addr()
    }

    /// Stops accepting, ends streams, lets in-flight calls finish, then
    /// closes the queue (anything still queued is answered UNAVAILABLE).
    pub async fn stop(mut self) {
        let drained = self.front.drain().await;
        self.commands.close();
        if let Some(forwarder) = self.forwarder.take() {
            let _ = tokio::task::spawn_blocking(move || forwarder.join()).await;
        }
        if !drained {
            self.front.finish().await;
        }
    }
}

/// Runs a relay on `listener` until `shutdown` resolves.
pub async fn run(
    listener: TcpListener,
    config: &Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    let relay = Relay::start(listener, config).await?;
    shutdown.await;
    relay.stop().await;
    Ok(())
}

/// Asks the engine node for its catalogue until it answers; logs once if it
/// has to wait.
async fn fetch_catalogue(broker: &Broker) -> Catalogue {
    let mut logged = false;
    loop {
        match ask_catalogue(broker).await {
            Ok(catalogue) => return catalogue,
            Err(why) if !logged => {
                info!(%why, subject = %broker.subjects.catalogue, "waiting for the engine node");
            }
            Err(_) => {}
        }
        logged = true;
        tokio::time::sleep(CATALOGUE_RETRY).await;
    }
}

/// One request for the engine node's catalogue, waiting at most
/// [`CATALOGUE_RETRY`].
async fn ask_catalogue(broker: &Broker) -> Result<Catalogue, String> {
    let request = broker.client.request(
        broker.subjects.catalogue.clone(),
        prost::bytes::Bytes::new(),
    );
    match tokio::time::timeout(CATALOGUE_RETRY, request).await {
        Err(_) => Err(format!("no answer within {CATALOGUE_RETRY:?}")),
        Ok(Err(err)) => Err(err.to_string()),
        Ok(Ok(message)) => Catalogue::decode(message.payload)
            .map_err(|err| format!("the engine node's catalogue cannot be decoded: {err}")),
    }
}

/// Replaces the relay's catalogue when the engine node starts another run,
/// which the snapshots' run id shows: one request at a time, off the
/// snapshot path, asked again on a later snapshot if it fails.
struct CatalogueRefresh {
    broker: Broker,
    catalogue: Arc<ArcSwap<Catalogue>>,
    /// True while a request is out.
    asking: Arc<AtomicBool>,
}

impl CatalogueRefresh {
    /// Asks for the catalogue if `snapshot` is from another run than the
    /// one the relay serves.
    fn check(&self, snapshot: &pb::WatchtowerSnapshot) {
        if snapshot.run_id == self.catalogue.load().run_id
            || self.asking.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let (broker, catalogue, asking) = (
            self.broker.clone(),
            Arc::clone(&self.catalogue),
            Arc::clone(&self.asking),
        );
        tokio::spawn(async move {
            match ask_catalogue(&broker).await {
                Ok(fresh) => {
                    info!(run_id = %fresh.run_id, "the engine node runs another run; serving its catalogue");
                    catalogue.store(Arc::new(fresh));
                }
                Err(why) => warn!(%why, "the engine node's new catalogue could not be fetched"),
            }
            asking.store(false, Ordering::Release);
        });
    }
}

/// Puts each snapshot from the broker into the local exchange; the hub
/// follows it from there. Holds the publisher until shutdown, so the relay
/// keeps serving its last snapshot through an outage.
async fn follow_snapshots(
    mut subscription: async_nats::Subscriber,
    publisher: TelemetryPublisher,
    refresh: CatalogueRefresh,
    shutdown: CancellationToken,
) {
    loop {
        let message = tokio::select! {
            () = shutdown.cancelled() => return,
            message = subscription.next() => match message {
                Some(message) => message,
                None => return,
            },
        };
        match pb::SubscribeTelemetryResponse::decode(message.payload) {
            Ok(pb::SubscribeTelemetryResponse {
                snapshot: Some(snapshot),
            }) => {
                refresh.check(&snapshot);
                publisher.publish(snapshot);
            }
            Ok(_) => warn!("a snapshot message from the broker holds no snapshot"),
            Err(err) => warn!(%err, "a snapshot message from the broker cannot be decoded"),
        }
    }
}

/// Forwards every queued command, and every audit query, to the engine
/// node.
#[derive(Clone, Debug)]
struct Forwarder {
    broker: Broker,
    /// `--broker-request-timeout`: the wait when the caller set no deadline.
    timeout: Duration,
    /// This relay's id, making its connection ids unique on the engine node.
    relay_id: u32,
}

impl Forwarder {
    /// Waits for queued commands and starts a forwarding task for each,
    /// until the queue closes.
    fn run(self: Arc<Self>, receiver: &CommandReceiver, runtime: &Handle) {
        let mut queued = Vec::new();
        while receiver.wait_for_work() {
            receiver.drain_into(&mut queued);
            for command in queued.drain(..) {
                runtime.spawn(Arc::clone(&self).forward(command));
            }
        }
    }

    /// Forwards one command and completes its reply.
    async fn forward(self: Arc<Self>, queued: QueuedCommand) {
        if queued.abandoned(std::time::Instant::now()).is_some() {
            return;
        }
        let origin = queued.origin.clone();
        let (request, reply) = queued.into_parts();
        let control = matches!(request, Request::Control { .. });
        let listing = matches!(request, Request::ListScheduled);
        let answer = self
            .request(Forward::new(request, &origin, self.relay_id))
            .await;
        metrics::broker_forwarded(answer.is_ok());
        match answer {
            Err(why) => reply.fail(ReplyError::Unreachable(why)),
            Ok(mut answer) => match answer.refusal() {
                Some(status) => reply.fail(ReplyError::Remote(status)),
                None if control => reply.send_status(answer.control.unwrap_or_default()),
                None if listing => reply.send_listing(answer.scheduled),
                None => reply.send_all(answer.responses),
            },
        };
    }

    /// Asks the engine node for a page of its audit log.
    async fn audit_page(self, forward: Forward) -> Result<ListAuditEntriesResponse, ApiError> {
        let mut answer = self
            .request(forward)
            .await
            .map_err(ApiError::EngineUnreachable)?;
        match answer.refusal() {
            Some(status) => Err(ApiError::Remote(status)),
            None => Ok(answer.audit.unwrap_or_default()),
        }
    }

    /// One request-reply with the engine node, until the caller's deadline
    /// (or `--broker-request-timeout` without one).
    async fn request(&self, forward: Forward) -> Result<Answer, String> {
        if !self.broker.is_connected() {
            return Err("the broker is down".to_owned());
        }
        let wait = forward
            .deadline_ms
            .map_or(self.timeout, Duration::from_millis);
        let request = self.broker.client.request(
            self.broker.subjects.command.clone(),
            forward.encode_to_vec().into(),
        );
        let message = match tokio::time::timeout(wait, request).await {
            Err(_) => return Err(format!("the engine node did not answer within {wait:?}")),
            Ok(Err(err)) => {
                return Err(match err.kind() {
                    async_nats::RequestErrorKind::NoResponders => {
                        "no engine node is answering on the broker".to_owned()
                    }
                    _ => err.to_string(),
                });
            }
            Ok(Ok(message)) => message,
        };
        Answer::decode(message.payload)
            .map_err(|err| format!("the engine node's answer cannot be decoded: {err}"))
    }
}

impl RemoteAudit for Forwarder {
    fn page(
        &self,
        request: ListAuditEntriesRequest,
        caller: &Caller,
    ) -> BoxFuture<'static, Result<ListAuditEntriesResponse, ApiError>> {
        let forward = Forward::audit(request, caller, self.relay_id);
        self.clone().audit_page(forward).boxed()
    }
}
