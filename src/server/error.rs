//! Every error the API returns, and its one mapping to `tonic::Status`.
//!
//! Rejections carry `google.rpc.BadRequest` field violations naming the field
//! and what it allows, plus a `google.rpc.ErrorInfo` with a machine-readable
//! reason and the command's id and tick, so clients in any language can act
//! on them without parsing the message.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::auth::AuthError;
use crate::{
    bridge::{RemoteStatus, ReplyError, SubmitError, Unrecorded},
    pb,
};

/// The `ErrorInfo.domain` of every Watchtower error.
pub const ERROR_DOMAIN: &str = "watchtower.v1";

/// What can go wrong in a call.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A required field is absent.
    #[error("{field} is required")]
    MissingField {
        /// The request field.
        field: &'static str,
    },
    /// A field is outside what the API accepts.
    #[error("{field} = {value} is not accepted; allowed: {allowed}")]
    InvalidField {
        /// The request field.
        field: &'static str,
        /// What was sent.
        value: String,
        /// What is accepted.
        allowed: &'static str,
    },
    /// More history was asked for than the server keeps.
    #[error("history = {requested} exceeds the server's history cap of {cap}")]
    InvalidHistory {
        /// What was asked for.
        requested: u32,
        /// The cap.
        cap: usize,
    },
    /// The command queue is full.
    #[error(transparent)]
    Submit(#[from] SubmitError),
    /// The engine stopped before answering.
    #[error("the engine stopped before answering the command")]
    EngineGone,
    /// The audit log cannot be written: the command's outcome was not
    /// acknowledged, or new commands are refused until the disk recovers.
    #[error(transparent)]
    Unrecorded(#[from] Unrecorded),
    /// This server keeps no audit log on disk (`--data-dir off`).
    #[error("this server keeps no audit log on disk (started with --data-dir off)")]
    NoAuditLog,
    /// The audit log on disk could not be read.
    #[error("cannot read the audit log: {0}")]
    AuditRead(String),
    /// The engine has stopped; its last values are no longer current.
    #[error("the engine is not running")]
    EngineStopped,
    /// The engine has published nothing yet.
    #[error("the engine has not published a snapshot yet")]
    NoTelemetry,
    /// The engine rejected the command in Phase 0.
    #[error("{}", .0.error)]
    Rejected(Box<pb::GodResponse>),
    /// No valid token where one is needed.
    #[error("{0}")]
    Unauthenticated(AuthError),
    /// The caller's role does not allow the call.
    #[error("{principal} is an {role}; this needs an {needed}")]
    PermissionDenied {
        /// Who called.
        principal: String,
        /// What it is.
        role: &'static str,
        /// What the call needs.
        needed: &'static str,
    },
    /// A string in the request is longer than its limit.
    #[error("{field} is {len} bytes (starting {prefix:?}); at most {max} bytes are allowed")]
    TooLong {
        /// The request field.
        field: String,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
        /// The first few bytes, so the caller can tell which value it was.
        prefix: String,
    },
    /// The principal sent commands faster than `--command-rate`.
    #[error("{principal} is over its command rate; retry in {retry_after:?}")]
    RateLimited {
        /// Who.
        principal: String,
        /// When a command would be accepted again.
        retry_after: std::time::Duration,
    },
    /// `--max-subscribers` telemetry subscribers are already open.
    #[error("the server already has {max} telemetry subscribers, its limit")]
    TooManySubscribers {
        /// The limit.
        max: usize,
    },
    /// The caller's deadline passed before the engine answered.
    #[error(
        "the deadline passed before the engine answered; the command is not applied if Phase 0 had not reached it (retry with the same command id to learn its outcome)"
    )]
    DeadlineExceeded,
    /// A command in a batch asked for a later tick: a batch applies in one
    /// Phase 0, the next one, so it cannot be scheduled.
    #[error(
        "{field} = {tick} is not accepted: a batch applies in the next Phase 0, all at once; schedule commands one by one with ApplyCommand"
    )]
    ScheduledInBatch {
        /// The command's field, by index (`commands[2].apply_at_tick`).
        field: String,
        /// The tick it asked for.
        tick: u64,
    },
    /// A unary request carried more than one message.
    #[error("a unary request must carry exactly one message; this one carried more")]
    MultipleMessages,
    /// A unary request carried no message.
    #[error("a unary request must carry exactly one message; this one carried none")]
    NoMessage,
    /// A request message is larger than the server decodes.
    #[error("the request is over {max} bytes")]
    RequestTooLarge {
        /// The limit.
        max: usize,
    },
    /// A relay cannot reach the engine node: the broker is down, no engine
    /// node answers, or it did not answer in time.
    #[error("the engine node cannot be reached through the broker: {0}")]
    EngineUnreachable(String),
    /// The engine node refused a call a relay forwarded; its own status,
    /// returned unchanged.
    #[error("{}", .0.message)]
    Remote(RemoteStatus),
}

impl From<ReplyError> for ApiError {
    fn from(err: ReplyError) -> Self {
        match err {
            ReplyError::Dropped => ApiError::EngineGone,
            ReplyError::Unrecorded(err) => ApiError::Unrecorded(err),
            ReplyError::Unreachable(why) => ApiError::EngineUnreachable(why),
            ReplyError::Remote(status) => ApiError::Remote(status),
        }
    }
}

impl ApiError {
    /// This error as plain data, for a relay to return unchanged: the code,
    /// message and details this server would answer with.
    pub fn to_remote(self) -> RemoteStatus {
        let status = Status::from(self);
        RemoteStatus {
            code: status.code() as i32,
            message: status.message().to_owned(),
            details: status.details().to_vec(),
        }
    }

    /// The code a WebSocket `error` message carries for this error: the gRPC
    /// status's name, except a full queue, which the legacy protocol has
    /// always called `QUEUE_FULL`.
    pub fn websocket_code(&self) -> &'static str {
        if matches!(self, ApiError::Submit(SubmitError::Full { .. })) {
            return "QUEUE_FULL";
        }
        match self.code() {
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::Aborted => "ABORTED",
            Code::NotFound => "NOT_FOUND",
            Code::FailedPrecondition => "FAILED_PRECONDITION",
            Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Code::Unauthenticated => "UNAUTHENTICATED",
            Code::PermissionDenied => "PERMISSION_DENIED",
            Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Code::Cancelled => "CANCELLED",
            _ => "UNAVAILABLE",
        }
    }

    /// A short machine-readable reason, for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::MissingField { .. }
            | ApiError::InvalidField { .. }
            | ApiError::InvalidHistory { .. }
            | ApiError::ScheduledInBatch { .. } => "INVALID_FIELD",
            ApiError::TooLong { .. } => "TOO_LONG",
            ApiError::MultipleMessages => "MULTIPLE_MESSAGES",
            ApiError::NoMessage => "NO_MESSAGE",
            ApiError::RequestTooLarge { .. } => "REQUEST_TOO_LARGE",
            ApiError::Submit(SubmitError::Full { .. }) => "QUEUE_FULL",
            ApiError::Submit(SubmitError::OverShare { .. }) => "QUEUE_SHARE",
            ApiError::RateLimited { .. } => "COMMAND_RATE",
            ApiError::TooManySubscribers { .. } => "MAX_SUBSCRIBERS",
            ApiError::Submit(SubmitError::Closed)
            | ApiError::EngineGone
            | ApiError::EngineStopped
            | ApiError::NoTelemetry => "ENGINE_STOPPED",
            ApiError::Unrecorded(_) => "AUDIT_LOG_UNAVAILABLE",
            ApiError::NoAuditLog => "NO_AUDIT_LOG",
            ApiError::AuditRead(_) => "AUDIT_READ",
            ApiError::Rejected(_) => "REJECTED",
            ApiError::Unauthenticated(_) => "UNAUTHENTICATED",
            ApiError::PermissionDenied { .. } => "PERMISSION_DENIED",
            ApiError::DeadlineExceeded => "DEADLINE_EXCEEDED",
            ApiError::EngineUnreachable(_) => "ENGINE_UNREACHABLE",
            ApiError::Remote(_) => "FORWARDED",
        }
    }

    /// The request field at fault, if one is.
    pub fn field(&self) -> Option<&str> {
        match self {
            ApiError::MissingField { field } | ApiError::InvalidField { field, .. } => Some(field),
            ApiError::TooLong { field, .. } | ApiError::ScheduledInBatch { field, .. } => {
                Some(field)
            }
            ApiError::Rejected(response) => Some(&response.field),
            _ => None,
        }
    }

    fn code(&self) -> Code {
        match self {
            ApiError::MissingField { .. }
            | ApiError::InvalidField { .. }
            | ApiError::InvalidHistory { .. }
            | ApiError::TooLong { .. }
            | ApiError::ScheduledInBatch { .. }
            | ApiError::MultipleMessages
            | ApiError::NoMessage => Code::InvalidArgument,
            ApiError::Submit(SubmitError::Full { .. } | SubmitError::OverShare { .. })
            | ApiError::RateLimited { .. }
            | ApiError::TooManySubscribers { .. }
            | ApiError::RequestTooLarge { .. } => Code::ResourceExhausted,
            ApiError::Submit(SubmitError::Closed)
            | ApiError::EngineGone
            | ApiError::Unrecorded(_)
            | ApiError::EngineStopped
            | ApiError::NoTelemetry => Code::Unavailable,
            ApiError::NoAuditLog => Code::FailedPrecondition,
            ApiError::AuditRead(_) => Code::Internal,
            ApiError::Rejected(response) => rejection_code(response.rejection()),
            ApiError::Unauthenticated(_) => Code::Unauthenticated,
            ApiError::PermissionDenied { .. } => Code::PermissionDenied,
            ApiError::DeadlineExceeded => Code::DeadlineExceeded,
            ApiError::EngineUnreachable(_) => Code::Unavailable,
            ApiError::Remote(status) => Code::from_i32(status.code),
        }
    }
}

/// The status of a command Phase 0 did not apply.
fn rejection_code(reason: pb::RejectionReason) -> Code {
    match reason {
        pb::RejectionReason::Immutable => Code::FailedPrecondition,
        pb::RejectionReason::Expired => Code::DeadlineExceeded,
        pb::RejectionReason::Cancelled => Code::Cancelled,
        pb::RejectionReason::Conflict => Code::Aborted,
        pb::RejectionReason::ScheduleFull => Code::ResourceExhausted,
        pb::RejectionReason::NotScheduled | pb::RejectionReason::UnknownCommand => Code::NotFound,
        pb::RejectionReason::NotRevertible => Code::FailedPrecondition,
        _ => Code::InvalidArgument,
    }
}

impl From<ApiError> for Status {
    fn from(err: ApiError) -> Status {
        let message = err.to_string();
        let code = err.code();
        match err {
            ApiError::MissingField { field } => Status::with_error_details(
                Code::InvalidArgument,
                message,
                ErrorDetails::with_bad_request_violation(field, "required"),
            ),
            ApiError::InvalidField { field, allowed, .. } => Status::with_error_details(
                Code::InvalidArgument,
                message,
                ErrorDetails::with_bad_request_violation(field, format!("allowed: {allowed}")),
            ),
            ApiError::InvalidHistory { cap, .. } => Status::with_error_details(
                Code::InvalidArgument,
                message,
                ErrorDetails::with_bad_request_violation("history", format!("allowed: 0 to {cap}")),
            ),
            ApiError::Submit(SubmitError::Full { capacity }) => {
                let mut details = ErrorDetails::with_error_info(
                    "QUEUE_FULL",
                    ERROR_DOMAIN,
                    HashMap::from([("capacity".to_owned(), capacity.to_string())]),
                );
                details.set_retry_info(Some(std::time::Duration::from_millis(100)));
                Status::with_error_details(Code::ResourceExhausted, message, details)
            }
            ApiError::Submit(SubmitError::OverShare { holder, share }) => {
                let info = [("holder", holder.to_owned()), ("share", share.to_string())];
                retry_status(code, message, "QUEUE_SHARE", &info, RETRY_SOON)
            }
            ApiError::RateLimited { retry_after, .. } => {
                retry_status(code, message, "COMMAND_RATE", &[], retry_after)
            }
            ApiError::TooManySubscribers { max } => {
                let info = [("max_subscribers", max.to_string())];
                retry_status(code, message, "MAX_SUBSCRIBERS", &info, RETRY_LATER)
            }
            ApiError::TooLong { field, max, .. } => Status::with_error_details(
                code,
                message,
                ErrorDetails::with_bad_request_violation(field, format!("at most {max} bytes")),
            ),
            ApiError::ScheduledInBatch { field, .. } => Status::with_error_details(
                code,
                message,
                ErrorDetails::with_bad_request_violation(
                    field,
                    "allowed: 0 (a batch applies in the next Phase 0)",
                ),
            ),
            ApiError::Unauthenticated(reason) => {
                let reason = match reason {
                    AuthError::Missing => "TOKEN_REQUIRED",
                    AuthError::Invalid => "TOKEN_INVALID",
                    AuthError::Malformed => "AUTHORIZATION_MALFORMED",
                };
                let details = ErrorDetails::with_error_info(reason, ERROR_DOMAIN, HashMap::new());
                Status::with_error_details(code, message, details)
            }
            ApiError::PermissionDenied { .. } => {
                let details = ErrorDetails::with_error_info(
                    "OPERATOR_REQUIRED",
                    ERROR_DOMAIN,
                    HashMap::new(),
                );
                Status::with_error_details(code, message, details)
            }
            ApiError::Unrecorded(_) => {
                retry_status(code, message, "AUDIT_LOG_UNAVAILABLE", &[], RETRY_DISK)
            }
            ApiError::Rejected(response) => rejection_status(&response, message),
            ApiError::EngineUnreachable(_) => {
                retry_status(code, message, "ENGINE_UNREACHABLE", &[], RETRY_DISK)
            }
            ApiError::Remote(status) => {
                Status::with_details(code, status.message, status.details.into())
            }
            ApiError::Submit(SubmitError::Closed)
            | ApiError::NoAuditLog
            | ApiError::AuditRead(_)
            | ApiError::EngineGone
            | ApiError::EngineStopped
            | ApiError::NoTelemetry
            | ApiError::DeadlineExceeded
            | ApiError::MultipleMessages
            | ApiError::NoMessage
            | ApiError::RequestTooLarge { .. } => Status::new(code, message),
        }
    }
}

/// How soon a caller over its queue share may retry: about one tick.
const RETRY_SOON: std::time::Duration = std::time::Duration::from_millis(100);
/// How soon a caller may retry while the audit log cannot be written.
const RETRY_DISK: std::time::Duration = std::time::Duration::from_secs(1);
/// How soon a refused subscriber may retry.
const RETRY_LATER: std::time::Duration = std::time::Duration::from_secs(5);

fn retry_status(
    code: Code,
    message: String,
    reason: &str,
    info: &[(&str, String)],
    retry_after: std::time::Duration,
) -> Status {
    let metadata: HashMap<String, String> = info
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    let mut details = ErrorDetails::with_error_info(reason, ERROR_DOMAIN, metadata);
    details.set_retry_info(Some(retry_after));
    Status::with_error_details(code, message, details)
}

fn rejection_status(response: &pb::GodResponse, message: String) -> Status {
    let reason = response.rejection();
    let code = rejection_code(reason);
    let description = if response.error.contains(&response.allowed) {
        response.error.clone()
    } else {
        format!("{}; allowed: {}", response.error, response.allowed)
    };
    let mut details = ErrorDetails::with_bad_request_violation(response.field.clone(), description);
    let mut metadata = HashMap::from([
        ("command_id".to_owned(), response.command_id.clone()),
        ("key".to_owned(), response.key.clone()),
        ("applied_tick".to_owned(), response.applied_tick.to_string()),
        ("allowed".to_owned(), response.allowed.clone()),
    ]);
    if reason == pb::RejectionReason::Conflict
        && let Some(current) = &response.old_value
        && let Ok(json) = serde_json::to_string(current)
    {
        // The value the parameter holds, in canonical JSON, to retry with.
        metadata.insert("current_value".to_owned(), json);
    }
    details.set_error_info(
        reason
            .as_str_name()
            .trim_start_matches("REJECTION_REASON_")
            .to_owned(),
        ERROR_DOMAIN,
        metadata,
    );
    Status::with_error_details(code, message, details)
}
