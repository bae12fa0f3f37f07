//! Who a caller is and what it may do: bearer tokens, principals and roles.
//!
//! Two roles: an *observer* reads (telemetry, parameters, audit, statistics,
//! metrics); an *operator* also changes state. Tokens come from
//! `--operator-token`, `--observer-token` and `--tokens-file`; each is kept
//! only as its SHA-256 digest and compared in constant time. Callers without
//! a token are operators when no token is configured, observers when only
//! operator tokens are, and refused once observer tokens exist too.
//!
//! [`AuthState`]'s [`Check`] is the one middleware that enforces this for every path of both
//! listeners, from the table in [`access`]; handlers read the [`Principal`]
//! it leaves in the request's extensions. Runs on tokio workers; no I/O.

use std::{ops::ControlFlow, path::Path, sync::Arc};

use axum::{
    extract::Request,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tonic::Status;

use super::{error::ApiError, layers::Check};
use crate::{config::SecurityConfig, pb};

/// The name recorded for callers that sent no token.
pub const ANONYMOUS: &str = "anonymous";
/// Longest principal name a tokens file may use.
pub const MAX_PRINCIPAL_NAME: usize = 64;

/// What a principal may do. Ordered: an operator may do all an observer may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads only.
    Observer,
    /// Reads and changes state.
    Operator,
}

impl Role {
    /// The wire enum.
    pub fn to_pb(self) -> pb::Role {
        match self {
            Role::Observer => pb::Role::Observer,
            Role::Operator => pb::Role::Operator,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Role::Observer => "observer",
            Role::Operator => "operator",
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The name from the token configuration, or [`ANONYMOUS`].
    pub name: Arc<str>,
    /// What it may do.
    pub role: Role,
}

impl Principal {
    /// Fails with PERMISSION_DENIED unless this principal holds `needed`.
    pub fn require(&self, needed: Role) -> Result<(), ApiError> {
        if self.role >= needed {
            Ok(())
        } else {
            Err(ApiError::PermissionDenied {
                principal: self.name.to_string(),
                role: self.role.name(),
                needed: needed.name(),
            })
        }
    }

    /// The wire form.
    pub fn to_pb(&self) -> pb::WhoAmIResponse {
        pb::WhoAmIResponse {
            principal: self.name.to_string(),
            role: self.role.to_pb().into(),
        }
    }
}

/// Why a caller could not be authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The server requires a token and none was sent.
    #[error("this server requires a token: send `authorization: Bearer TOKEN`")]
    Missing,
    /// A token was sent that the server does not know.
    #[error("the token is not valid")]
    Invalid,
    /// The authorization header is not `Bearer TOKEN`.
    #[error("the authorization header must be `Bearer TOKEN`")]
    Malformed,
}

/// A tokens file or token flag could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenConfigError {
    /// The file could not be read.
    #[error("cannot read the tokens file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not the expected YAML.
    #[error("the tokens file {path} is not valid: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// One configured token.
struct TokenEntry {
    digest: [u8; 32],
    principal: Principal,
}

/// Turns an `authorization` header into a [`Principal`].
pub struct Authenticator {
    tokens: Vec<TokenEntry>,
    /// What a caller without a token is, if it is accepted at all.
    anonymous: Option<Principal>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("tokens", &self.tokens.len())
            .field("anonymous", &self.anonymous)
            .finish()
    }
}

/// The tokens file: `principals: [{name, role, token | token_sha256}]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    principals: Vec<TokensFileEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFileEntry {
    name: String,
    role: Role,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    token_sha256: Option<String>,
}

impl Authenticator {
    /// Builds the token table from the flags and the tokens file.
    pub fn from_config(config: &SecurityConfig) -> Result<Self, TokenConfigError> {
        let mut tokens = Vec::new();
        if let Some(token) = &config.operator_token {
            tokens.push(entry("operator", Role::Operator, digest(token.expose())));
        }
        if let Some(token) = &config.observer_token {
            tokens.push(entry("observer", Role::Observer, digest(token.expose())));
        }
        if let Some(path) = &config.tokens_file {
            tokens.extend(read_tokens_file(path)?);
        }
        Ok(Self::new(tokens))
    }

    fn new(tokens: Vec<TokenEntry>) -> Self {
        let has = |role| tokens.iter().any(|t| t.principal.role == role);
        let anonymous = match (has(Role::Operator), has(Role::Observer)) {
            (false, false) => Some(Role::Operator),
            (true, false) => Some(Role::Observer),
            (_, true) => None,
        }
        .map(|role| Principal {
            name: ANONYMOUS.into(),
            role,
        });
        Self { tokens, anonymous }
    }

    /// True if some token makes its bearer an operator.
    pub fn has_operator_token(&self) -> bool {
        self.tokens
            .iter()
            .any(|t| t.principal.role == Role::Operator)
    }

    /// True if a caller without a token may steer.
    pub fn anonymous_operators(&self) -> bool {
        self.anonymous
            .as_ref()
            .is_some_and(|p| p.role == Role::Operator)
    }

    /// The caller of a request, from its `authorization` header.
    pub fn from_headers(&self, headers: &HeaderMap) -> Result<Principal, AuthError> {
        match headers.get(header::AUTHORIZATION) {
            None => self.authenticate(None),
            Some(value) => {
                let token = value
                    .to_str()
                    .ok()
                    .and_then(bearer)
                    .ok_or(AuthError::Malformed)?;
                self.authenticate(Some(token))
            }
        }
    }

    /// The principal a token names; `None` is a caller without one.
    pub fn authenticate(&self, token: Option<&str>) -> Result<Principal, AuthError> {
        let Some(token) = token else {
            return self.anonymous.clone().ok_or(AuthError::Missing);
        };
        let presented = digest(token);
        // Look at every entry, so the time taken does not say which matched.
        let mut found = None;
        for entry in &self.tokens {
            if bool::from(entry.digest.ct_eq(&presented)) {
                found = Some(&entry.principal);
            }
        }
        found.cloned().ok_or(AuthError::Invalid)
    }
}

fn entry(name: &str, role: Role, digest: [u8; 32]) -> TokenEntry {
    TokenEntry {
        digest,
        principal: Principal {
            name: name.into(),
            role,
        },
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The token of `Bearer TOKEN` (the scheme is case-insensitive).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn read_tokens_file(path: &Path) -> Result<Vec<TokenEntry>, TokenConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| TokenConfigError::Read {
        path: shown.clone(),
        source,
    })?;
    let invalid = |message: String| TokenConfigError::Parse {
        path: shown.clone(),
        message,
    };
    let file: TokensFile = serde_norway::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    let mut names = std::collections::BTreeSet::new();
    file.principals
        .into_iter()
        .map(|p| {
            if p.name.is_empty() || p.name.len() > MAX_PRINCIPAL_NAME || p.name == ANONYMOUS {
                return Err(invalid(format!(
                    "principal name {:?} must be 1 to {MAX_PRINCIPAL_NAME} bytes and not `{ANONYMOUS}`",
                    p.name
                )));
            }
            if !names.insert(p.name.clone()) {
                return Err(invalid(format!("principal {:?} appears twice", p.name)));
            }
            let digest = match (&p.token, &p.token_sha256) {
                (Some(token), None) if !token.is_empty() => digest(token),
                (None, Some(hex)) => parse_sha256(hex).ok_or_else(|| {
                    invalid(format!(
                        "principal {:?}: token_sha256 must be 64 hex digits",
                        p.name
                    ))
                })?,
                _ => {
                    return Err(invalid(format!(
                        "principal {:?} needs exactly one of `token` and `token_sha256`",
                        p.name
                    )));
                }
            };
            Ok(entry(&p.name, p.role, digest))
        })
        .collect()
}

fn parse_sha256(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// What a path needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: health, reflection and the dashboard's files (which must load
    /// to ask for a token).
    Open,
    /// An authenticated caller with at least this role.
    Role(Role),
    /// The WebSocket: a wrong header is refused at once, but a caller without
    /// one may still present a token in its first message.
    WebSocket,
}

/// The service whose methods the table below names.
const SERVICE: &str = "/watchtower.v1.WatchtowerService/";
/// Methods of `WatchtowerService` an observer may call; every other method
/// of it, including any added later, needs an operator.
const OBSERVER_METHODS: [&str; 6] = [
    "SubscribeTelemetry",
    "ListParameters",
    "GetServerStats",
    "WhoAmI",
    "ListAuditEntries",
    "ListScheduledCommands",
];

/// The access table: what each path of either listener needs.
pub fn access(path: &str) -> Access {
    if path.starts_with("/grpc.health.v1.") || path.starts_with("/grpc.reflection.") {
        return Access::Open;
    }
    if let Some(method) = path.strip_prefix(SERVICE) {
        return if OBSERVER_METHODS.contains(&method) {
            Access::Role(Role::Observer)
        } else {
            Access::Role(Role::Operator)
        };
    }
    match path {
        "/" | "/index.html" | "/app.js" | "/app.css" | "/favicon.ico" => Access::Open,
        "/ws" => Access::WebSocket,
        "/metrics" => Access::Role(Role::Observer),
        _ => Access::Role(Role::Operator),
    }
}

/// What the guard left for the WebSocket handler: the caller, if the
/// headers already say who it is.
#[derive(Debug, Clone)]
pub struct HeaderIdentity(pub Result<Principal, AuthError>);

/// The state the guard needs.
#[derive(Debug, Clone)]
pub struct AuthState {
    /// The token table.
    pub authenticator: Arc<Authenticator>,
    /// Paths the legacy listener serves as its WebSocket (it serves `/`).
    pub websocket_paths: &'static [&'static str],
}

/// Authenticates every request and refuses what its path does not allow,
/// before any handler runs. gRPC paths get gRPC statuses (which the gRPC-Web
/// layer outside translates); others get HTTP 401 or 403.
impl Check for AuthState {
    fn check(&self, request: &mut Request) -> ControlFlow<Response> {
        let path = request.uri().path();
        let needed = if self.websocket_paths.contains(&path) {
            Access::WebSocket
        } else {
            access(path)
        };
        let grpc = is_grpc(request);
        let identity = self.authenticator.from_headers(request.headers());
        let extensions = request.extensions_mut();
        match (needed, identity) {
            (Access::Open, identity) => {
                if let Ok(principal) = identity {
                    extensions.insert(principal);
                }
            }
            (Access::WebSocket, Err(AuthError::Missing)) => {
                extensions.insert(HeaderIdentity(Err(AuthError::Missing)));
            }
            (Access::WebSocket, Ok(principal)) => {
                extensions.insert(HeaderIdentity(Ok(principal)));
            }
            (_, Err(err)) => {
                return ControlFlow::Break(refuse(ApiError::Unauthenticated(err), grpc));
            }
            (Access::Role(role), Ok(principal)) => {
                if let Err(err) = principal.require(role) {
                    return ControlFlow::Break(refuse(err, grpc));
                }
                extensions.insert(principal);
            }
        }
        ControlFlow::Continue(())
    }
}

fn is_grpc(request: &Request) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"))
}

fn refuse(err: ApiError, grpc: bool) -> Response {
    if grpc {
        Status::from(err).into_http()
    } else {
        let status = match err {
            ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            _ => StatusCode::FORBIDDEN,
        };
        (status, err.to_string()).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authenticator(tokens: &[(&str, Role, &str)]) -> Authenticator {
        Authenticator::new(
            tokens
                .iter()
                .map(|(name, role, token)| entry(name, *role, digest(token)))
                .collect(),
        )
    }

    #[test]
    fn without_tokens_everyone_operates() {
        let auth = authenticator(&[]);
        assert_eq!(auth.authenticate(None).unwrap().role, Role::Operator);
        assert_eq!(auth.authenticate(Some("x")), Err(AuthError::Invalid));
    }

    #[test]
    fn an_operator_token_makes_anonymous_callers_observers() {
        let auth = authenticator(&[("ops", Role::Operator, "secret-1")]);
        assert_eq!(auth.authenticate(None).unwrap().role, Role::Observer);
        let ops = auth.authenticate(Some("secret-1")).unwrap();
        assert_eq!((&*ops.name, ops.role), ("ops", Role::Operator));
        assert_eq!(auth.authenticate(Some("secret-2")), Err(AuthError::Invalid));
    }

    #[test]
    fn an_observer_token_as_well_refuses_anonymous_callers() {
        let auth = authenticator(&[("ops", Role::Operator, "a"), ("watch", Role::Observer, "b")]);
        assert_eq!(auth.authenticate(None), Err(AuthError::Missing));
        assert_eq!(auth.authenticate(Some("b")).unwrap().role, Role::Observer);
    }

    #[test]
    fn bearer_scheme_is_parsed_strictly() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer abc"), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("Bearerabc"), None);
    }

    #[test]
    fn sha256_hex_is_parsed() {
        let hex = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        assert_eq!(parse_sha256(hex), Some(digest("test")));
        assert_eq!(parse_sha256("zz"), None);
    }

    #[test]
    fn every_watchtower_method_not_listed_needs_an_operator() {
        assert_eq!(
            access(&format!("{SERVICE}ApplyCommand")),
            Access::Role(Role::Operator)
        );
        assert_eq!(
            access(&format!("{SERVICE}SomethingNew")),
            Access::Role(Role::Operator)
        );
        assert_eq!(
            access(&format!("{SERVICE}WhoAmI")),
            Access::Role(Role::Observer)
        );
        assert_eq!(access("/grpc.health.v1.Health/Check"), Access::Open);
        assert_eq!(access("/"), Access::Open);
    }
}
