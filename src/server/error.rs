//! Every error the API returns, and its one mapping to `tonic::Status`.
//!
//! Rejections carry `google.rpc.BadRequest` field violations naming the field
//! and what it allows, plus a `google.rpc.ErrorInfo` with a machine-readable
//! reason and the command's id and tick, so clients in any language can act
//! on them without parsing the message.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::{
    bridge::{ReplyError, SubmitError, Unrecorded},
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
}

impl From<ReplyError> for ApiError {
    fn from(err: ReplyError) -> Self {
        match err {
            ReplyError::Dropped => ApiError::EngineGone,
            ReplyError::Unrecorded(err) => ApiError::Unrecorded(err),
        }
    }
}

impl From<ApiError> for Status {
    fn from(err: ApiError) -> Status {
        let message = err.to_string();
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
            ApiError::Unrecorded(_) => {
                let mut details = ErrorDetails::with_error_info(
                    "AUDIT_LOG_UNAVAILABLE",
                    ERROR_DOMAIN,
                    HashMap::new(),
                );
                details.set_retry_info(Some(std::time::Duration::from_secs(1)));
                Status::with_error_details(Code::Unavailable, message, details)
            }
            ApiError::NoAuditLog => Status::failed_precondition(message),
            ApiError::AuditRead(_) => Status::internal(message),
            ApiError::Submit(SubmitError::Closed)
            | ApiError::EngineGone
            | ApiError::EngineStopped
            | ApiError::NoTelemetry => Status::unavailable(message),
            ApiError::Rejected(response) => rejection_status(&response, message),
        }
    }
}

fn rejection_status(response: &pb::GodResponse, message: String) -> Status {
    let reason = response.rejection();
    let code = match reason {
        pb::RejectionReason::Immutable => Code::FailedPrecondition,
        _ => Code::InvalidArgument,
    };
    let description = if response.error.contains(&response.allowed) {
        response.error.clone()
    } else {
        format!("{}; allowed: {}", response.error, response.allowed)
    };
    let mut details = ErrorDetails::with_bad_request_violation(response.field.clone(), description);
    details.set_error_info(
        reason
            .as_str_name()
            .trim_start_matches("REJECTION_REASON_")
            .to_owned(),
        ERROR_DOMAIN,
        HashMap::from([
            ("command_id".to_owned(), response.command_id.clone()),
            ("key".to_owned(), response.key.clone()),
            ("applied_tick".to_owned(), response.applied_tick.to_string()),
            ("allowed".to_owned(), response.allowed.clone()),
        ]),
    );
    Status::with_error_details(code, message, details)
}
