//! `watchtower healthcheck`: a `grpc.health.v1` client that asks a running
//! server whether it is SERVING (the container's `HEALTHCHECK`). It runs in
//! its own short-lived process, on the binary's tokio runtime, and knows
//! nothing of the server but its address.

use std::{net::SocketAddr, time::Duration};

use tonic::transport::Endpoint;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// How long the whole check (connect and call) may take before it counts as
/// a failure; Docker's own `--timeout` should be longer.
pub const HEALTHCHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// Why the health service could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum HealthcheckError {
    /// Nothing answered at the address.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The address asked.
        addr: SocketAddr,
        /// Why.
        source: tonic::transport::Error,
    },
    /// The server answered the call with an error.
    #[error("health check failed: {0}")]
    Call(#[from] tonic::Status),
    /// No answer within [`HEALTHCHECK_TIMEOUT`].
    #[error("no answer from {0} within {HEALTHCHECK_TIMEOUT:?}")]
    Timeout(SocketAddr),
}

/// Asks the server at `addr` for its overall status (service `""`), which
/// is SERVING once the engine has ticked and NOT_SERVING once it stops.
pub async fn check(addr: SocketAddr) -> Result<ServingStatus, HealthcheckError> {
    tokio::time::timeout(HEALTHCHECK_TIMEOUT, ask(addr))
        .await
        .map_err(|_| HealthcheckError::Timeout(addr))?
}

async fn ask(addr: SocketAddr) -> Result<ServingStatus, HealthcheckError> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .expect("a socket address is a valid URI")
        .connect_timeout(HEALTHCHECK_TIMEOUT)
        .connect()
        .await
        .map_err(|source| HealthcheckError::Connect { addr, source })?;
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await?;
    Ok(response.into_inner().status())
}
