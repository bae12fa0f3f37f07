//! The broker between one engine node and any number of relays (issue 13,
//! docs/scale-out.md), over NATS with async-nats.
//!
//! - [`engine_node`]: with `--broker`, the engine node publishes every
//!   snapshot the hub encodes, answers catalogue requests and forwarded
//!   commands;
//! - [`relay`]: `watchtower relay`, the same public API with no engine,
//!   fed from the broker;
//! - [`envelope`]: what crosses the broker for a forwarded command.
//!
//! Everything here runs on the tokio runtime (the relay's forwarder waits on
//! its command queue on a thread of its own), never on the engine thread: a
//! slow or absent broker never delays a tick. Whoever may publish on the
//! command subject is trusted to name the caller: NATS credentials are the
//! trust boundary.

pub mod engine_node;
pub mod envelope;
pub mod relay;

use std::{sync::Mutex, time::Duration};

use async_nats::{ConnectOptions, Event};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::BrokerConfig;

pub use envelope::Catalogue;

/// The first pause before reconnecting to a lost broker; it doubles per
/// failed attempt up to [`MAX_RECONNECT_DELAY`].
const RECONNECT_DELAY: Duration = Duration::from_millis(100);
/// The longest pause between two reconnect attempts, so a returning broker
/// is found within about this long.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(2);

/// Why the broker could not be used.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// `watchtower relay` without `--broker`.
    #[error("a relay needs a broker: set --broker nats://HOST:PORT (WATCHTOWER_BROKER)")]
    NoBroker,
    /// The credentials file could not be read.
    #[error("cannot read the broker credentials {path}: {source}")]
    Credentials {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A `--broker` URL could not be parsed.
    #[error("--broker {url} is not a NATS URL: {source}")]
    Url {
        /// The URL given.
        url: String,
        /// Why.
        source: std::io::Error,
    },
    /// The URL or options were refused.
    #[error("cannot use the broker {urls}: {source}")]
    Connect {
        /// The URLs given.
        urls: String,
        /// Why.
        source: async_nats::ConnectError,
    },
    /// A subscription could not be made.
    #[error("cannot subscribe to {subject}: {source}")]
    Subscribe {
        /// The subject.
        subject: String,
        /// Why.
        source: async_nats::SubscribeError,
    },
}

/// The subjects one engine node and its relays share.
#[derive(Debug, Clone)]
pub struct Subjects {
    /// Every snapshot, as its encoded `SubscribeTelemetryResponse`.
    pub snapshot: String,
    /// Request-reply: the run id and parameter catalogue.
    pub catalogue: String,
    /// Request-reply: a forwarded command ([`envelope::Forward`]).
    pub command: String,
}

impl Subjects {
    fn new(prefix: &str) -> Self {
        Self {
            snapshot: format!("{prefix}.snapshot"),
            catalogue: format!("{prefix}.catalogue"),
            command: format!("{prefix}.command"),
        }
    }
}

/// A connection to the broker that reconnects by itself.
#[derive(Debug, Clone)]
pub struct Broker {
    /// The NATS client; cheap to clone, one connection underneath.
    pub client: async_nats::Client,
    /// True while connected, from the client's own events: a `watch`,
    /// because readers want the current state and to wake on a change.
    pub connected: watch::Receiver<bool>,
    /// The subjects under `--broker-prefix`.
    pub subjects: Subjects,
}

/// Connects to `config`'s broker as `role` ("engine node" or "relay").
/// Returns at once: the first connection and every reconnection happen in
/// the background, and [`Broker::connected`] follows them. An outage is
/// logged once when it starts and once when it ends.
pub async fn connect(config: &BrokerConfig, role: &'static str) -> Result<Broker, BrokerError> {
    let (state, connected) = watch::channel(false);
    let refusal = Mutex::new(None);
    let mut options = ConnectOptions::new()
        .name(format!("watchtower {role}"))
        .retry_on_initial_connect()
        .max_reconnects(None)
        .request_timeout(None)
        .reconnect_delay_callback(reconnect_delay)
        .event_callback(move |event| {
            report(&event, role, &state, &refusal);
            async {}
        });
    if let Some(path) = &config.creds {
        options =
            options
                .credentials_file(path)
                .await
                .map_err(|source| BrokerError::Credentials {
                    path: path.clone(),
                    source,
                })?;
    }
    if let Some(token) = &config.token {
        options = options.token(token.expose().to_owned());
    }
    if let Some(ca) = &config.tls_ca {
        options = options.add_root_certificates(ca.clone()).require_tls(true);
    }
    let addrs = config
        .urls
        .iter()
        .map(|url| {
            url.parse::<async_nats::ServerAddr>()
                .map_err(|source| BrokerError::Url {
                    url: url.clone(),
                    source,
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let urls = config.urls.join(",");
    let client = options
        .connect(addrs)
        .await
        .map_err(|source| BrokerError::Connect { urls, source })?;
    Ok(Broker {
        client,
        connected,
        subjects: Subjects::new(&config.prefix),
    })
}

/// Follows the connection's state and logs each change once: connected,
/// lost, and each distinct error (a refused token, a failed TLS handshake)
/// once until the next connection, however often reconnecting retries it.
fn report(
    event: &Event,
    role: &'static str,
    state: &watch::Sender<bool>,
    refusal: &Mutex<Option<String>>,
) {
    let mut refusal = refusal
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match event {
        // send_replace returns the previous state.
        Event::Connected => {
            *refusal = None;
            if !state.send_replace(true) {
                info!(role, "broker connected");
            }
        }
        Event::Disconnected if state.send_replace(false) => {
            warn!(
                role,
                "broker connection lost; reconnecting in the background"
            );
        }
        Event::ServerError(_) | Event::ClientError(_) => {
            let error = event.to_string();
            if refusal.as_deref() != Some(error.as_str()) {
                warn!(role, %error, "the broker connection failed; retrying in the background");
                *refusal = Some(error);
            }
        }
        _ => {}
    }
}

impl Broker {
    /// Subscribes to `subject`.
    pub async fn subscribe(&self, subject: &str) -> Result<async_nats::Subscriber, BrokerError> {
        self.client
            .subscribe(subject.to_owned())
            .await
            .map_err(|source| BrokerError::Subscribe {
                subject: subject.to_owned(),
                source,
            })
    }

    /// True while the connection is up.
    pub fn is_connected(&self) -> bool {
        *self.connected.borrow()
    }
}

fn reconnect_delay(attempts: usize) -> Duration {
    let doublings = u32::try_from(attempts.min(16)).unwrap_or(16);
    RECONNECT_DELAY
        .saturating_mul(1 << doublings)
        .min(MAX_RECONNECT_DELAY)
}
