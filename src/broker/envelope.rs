//! What crosses the broker besides snapshots: the catalogue, and a forwarded
//! command with its answer. Protobuf, with the API's own messages inside,
//! declared here with prost's derive rather than in the public proto: these
//! are the broker's private wire, not part of `watchtower.v1`.
//!
//! A [`Forward`] carries one `bridge::Request` plus who sent it (principal,
//! role, connection, time left before the caller's deadline); an [`Answer`]
//! carries the engine node's result, or its error as the gRPC status it
//! would have returned (code, message, encoded details), so the relay
//! returns exactly that status.

use std::time::{Duration, Instant};

/// The run id and the parameter schema, which a relay needs before it can
/// serve `ListParameters` and `GetServerStats`.
pub use crate::server::service::Catalogue;
use crate::{
    bridge::{CommandOrigin, RemoteStatus, Request},
    pb::{
        ControlEngineRequest, ControlEngineResponse, GodCommand, GodResponse,
        ListAuditEntriesRequest, ListAuditEntriesResponse, ScheduledCommand,
    },
    server::{auth::Role, service::Caller},
};

/// Which `bridge::Request` a [`Forward`] carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Kind {
    /// Never sent.
    Unspecified = 0,
    /// `Request::Command`: `commands[0]`.
    Command = 1,
    /// `Request::Batch`: `commands`, `validate_only`.
    Batch = 2,
    /// `Request::Cancel`: `command_id`.
    Cancel = 3,
    /// `Request::ListScheduled`.
    ListScheduled = 4,
    /// `Request::Revert`: `command_id`.
    Revert = 5,
    /// `Request::Control`: `control`.
    Control = 6,
    /// A `ListAuditEntries` read: `audit`. Not a command: the engine node
    /// reads its log without queueing it.
    ListAudit = 7,
}

/// A command forwarded by a relay to the engine node.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Forward {
    /// The caller's principal, as the relay authenticated it.
    #[prost(string, tag = "1")]
    pub principal: String,
    /// True if the caller is an operator.
    #[prost(bool, tag = "2")]
    pub operator: bool,
    /// The caller's connection, unique across relays (the relay's id in the
    /// high half), for the engine node's fair queue share.
    #[prost(uint64, tag = "3")]
    pub connection: u64,
    /// Milliseconds left before the caller's deadline, if it set one.
    #[prost(uint64, optional, tag = "4")]
    pub deadline_ms: Option<u64>,
    /// What is asked.
    #[prost(enumeration = "Kind", tag = "5")]
    pub kind: i32,
    /// The command, or the batch's commands.
    #[prost(message, repeated, tag = "6")]
    pub commands: Vec<GodCommand>,
    /// A batch that is only checked.
    #[prost(bool, tag = "7")]
    pub validate_only: bool,
    /// The command a cancel or revert names.
    #[prost(string, tag = "8")]
    pub command_id: String,
    /// The control action.
    #[prost(message, optional, tag = "9")]
    pub control: Option<ControlEngineRequest>,
    /// The audit query.
    #[prost(message, optional, tag = "10")]
    pub audit: Option<ListAuditEntriesRequest>,
}

/// The engine node's answer to a [`Forward`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct Answer {
    /// A command's, cancel's or revert's response, or a batch's responses.
    #[prost(message, repeated, tag = "1")]
    pub responses: Vec<GodResponse>,
    /// A control action's run state.
    #[prost(message, optional, tag = "2")]
    pub control: Option<ControlEngineResponse>,
    /// The scheduled commands.
    #[prost(message, repeated, tag = "3")]
    pub scheduled: Vec<ScheduledCommand>,
    /// The gRPC status code of a refusal; 0 (OK) if there is none.
    #[prost(int32, tag = "4")]
    pub error_code: i32,
    /// The refusal's message.
    #[prost(string, tag = "5")]
    pub error_message: String,
    /// The refusal's encoded `google.rpc.Status` details.
    #[prost(bytes = "vec", tag = "6")]
    pub error_details: Vec<u8>,
    /// A page of the audit log.
    #[prost(message, optional, tag = "7")]
    pub audit: Option<ListAuditEntriesResponse>,
}

impl Forward {
    /// The envelope for `request` from `origin`, whose connection is made
    /// unique across relays with `relay_id`.
    pub fn new(request: Request, origin: &CommandOrigin, relay_id: u32) -> Self {
        // Every request but a listing entered the relay's queue only after
        // its `require(Role::Operator)`; a listing needs no role.
        let operator = !matches!(request, Request::ListScheduled);
        let mut forward = Self::from_caller(
            origin.principal.to_string(),
            operator,
            origin.connection,
            origin.deadline,
            relay_id,
        );
        let kind = match request {
            Request::Command(command) => {
                forward.commands = vec![command];
                Kind::Command
            }
            Request::Batch {
                commands,
                validate_only,
            } => {
                forward.commands = commands;
                forward.validate_only = validate_only;
                Kind::Batch
            }
            Request::Cancel { command_id } => {
                forward.command_id = command_id;
                Kind::Cancel
            }
            // The engine node gives the revert an id of its own.
            Request::Revert { command_id, .. } => {
                forward.command_id = command_id;
                Kind::Revert
            }
            Request::ListScheduled => Kind::ListScheduled,
            Request::Control { action, .. } => {
                forward.control = Some(ControlEngineRequest {
                    action: Some(action),
                });
                Kind::Control
            }
        };
        forward.kind = kind as i32;
        forward
    }

    /// The envelope for an audit query from `caller`.
    pub fn audit(request: ListAuditEntriesRequest, caller: &Caller, relay_id: u32) -> Self {
        Self {
            kind: Kind::ListAudit as i32,
            audit: Some(request),
            ..Self::from_caller(
                caller.principal.name.to_string(),
                caller.principal.role == Role::Operator,
                caller.connection,
                caller.deadline,
                relay_id,
            )
        }
    }

    /// An envelope with only its caller filled in.
    fn from_caller(
        principal: String,
        operator: bool,
        connection: u64,
        deadline: Option<Instant>,
        relay_id: u32,
    ) -> Self {
        Self {
            principal,
            operator,
            connection: (u64::from(relay_id) << 32) | (connection & 0xffff_ffff),
            deadline_ms: deadline.map(|d| {
                let left = d.saturating_duration_since(Instant::now());
                u64::try_from(left.as_millis()).unwrap_or(u64::MAX)
            }),
            ..Self::default()
        }
    }

    /// The caller's deadline, counted from now on this node's clock.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline_ms
            .and_then(|ms| Instant::now().checked_add(Duration::from_millis(ms)))
    }
}

impl Answer {
    /// An answer that is a refusal with `status`.
    pub fn refused(status: RemoteStatus) -> Self {
        Self {
            error_code: status.code,
            error_message: status.message,
            error_details: status.details,
            ..Self::default()
        }
    }

    /// The refusal, if this answer is one.
    pub fn refusal(&mut self) -> Option<RemoteStatus> {
        (self.error_code != 0).then(|| RemoteStatus {
            code: self.error_code,
            message: std::mem::take(&mut self.error_message),
            details: std::mem::take(&mut self.error_details),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use prost::Message;

    use super::*;
    use crate::pb::{ControlStep, control_engine_request::Action};

    fn origin(deadline: Option<Instant>) -> CommandOrigin {
        CommandOrigin {
            principal: Arc::from("ops"),
            named: true,
            connection: 7,
            deadline,
        }
    }

    #[test]
    fn a_control_action_crosses_with_its_caller_and_the_time_left() {
        let deadline = Instant::now() + Duration::from_secs(5);
        let request = Request::Control {
            id: "c".into(),
            action: Action::Step(ControlStep { ticks: 3 }),
        };
        let sent = Forward::new(request, &origin(Some(deadline)), 0xabcd);
        let got = Forward::decode(sent.encode_to_vec().as_slice()).unwrap();
        assert_eq!(got.kind(), Kind::Control);
        assert_eq!(
            got.control.unwrap().action,
            Some(Action::Step(ControlStep { ticks: 3 }))
        );
        assert_eq!(got.principal, "ops");
        assert!(got.operator);
        assert_eq!(got.connection, (0xabcd << 32) | 7);
        assert!(got.deadline_ms.is_some_and(|ms| ms <= 5000));
    }

    #[test]
    fn a_listing_needs_no_role_and_a_revert_names_its_command() {
        let listing = Forward::new(Request::ListScheduled, &origin(None), 1);
        assert_eq!(listing.kind(), Kind::ListScheduled);
        assert!(!listing.operator);
        assert_eq!(listing.deadline_ms, None);
        let revert = Request::Revert {
            id: "new".into(),
            command_id: "old".into(),
        };
        let revert = Forward::new(revert, &origin(None), 1);
        assert_eq!(
            (revert.kind(), revert.command_id.as_str()),
            (Kind::Revert, "old")
        );
    }

    #[test]
    fn a_refusal_crosses_unchanged() {
        let status = RemoteStatus {
            code: 3,
            message: "command.value = 9 is out of range".into(),
            details: vec![1, 2, 3],
        };
        let sent = Answer::refused(status.clone());
        let mut got = Answer::decode(sent.encode_to_vec().as_slice()).unwrap();
        assert_eq!(got.refusal(), Some(status));
        assert_eq!(Answer::default().refusal(), None);
    }
}
