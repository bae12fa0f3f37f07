//! The fuzz targets' checks, shared with the stable test suite.
//!
//! Each function takes the raw bytes libFuzzer hands a target, drives one of
//! the places a client's input reaches first through the library's own
//! functions, and panics if an invariant breaks (a panic inside the library
//! is a finding too). `fuzz_targets/*.rs` run them under libFuzzer
//! (`cargo +nightly fuzz run TARGET`); `tests/fuzz_corpus.rs` replays the
//! committed corpus (`fuzz/corpus/TARGET/`) through the same functions on
//! stable, so `./test` catches a regression. Runs on the caller's thread.

use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use prost::Message;
use tonic::{Code, Status};
use tonic_types::StatusExt;
use watchtower::{
    engine::{GlobalRegistry, Value, ValueType, registry::value_from_pb},
    pb::{self, control_engine_request::Action, web_socket_client_message::Message as WsMessage},
    server::{
        error::ApiError,
        limits::{self, MAX_BATCH_COMMANDS, MAX_ID_BYTES, MAX_KEY_BYTES, MAX_REASON_BYTES},
        service::{audit_query, required_command_id, telemetry_interval},
        ws,
    },
};

/// A target's check: panics on a broken invariant.
pub type Check = fn(&[u8]);

/// Every target: its name (the directory under `fuzz/corpus/`) and its check.
pub const TARGETS: [(&str, Check); 4] = [
    ("grpc_request", grpc_request),
    ("websocket_json", websocket_json),
    ("params_yaml", params_yaml),
    ("registry_commands", registry_commands),
];

/// The gRPC request path: the body framing the `one_message` middleware
/// counts, then the protobuf decoding of the request type the first byte
/// picks (every `WatchtowerService` request), then the same checks the
/// handler runs before anything is queued. A decoded message re-encodes to
/// bytes that decode to the same message; a refusal is `INVALID_ARGUMENT`
/// with a `BadRequest` naming the field; an accepted command is within every
/// size limit.
pub fn grpc_request(data: &[u8]) {
    limits::count_messages(data);
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    match selector % 11 {
        0 => on::<pb::ApplyCommandRequest>(body, |r| {
            let command = r
                .command
                .ok_or(ApiError::MissingField { field: "command" })?;
            checked_command(&command, "command")
        }),
        1 => on::<pb::ApplyCommandsRequest>(body, |r| checked_batch(&r.commands)),
        2 => on::<pb::SubscribeTelemetryRequest>(body, |r| {
            telemetry_interval(r.interval_ms).map(drop)
        }),
        3 => on::<pb::ListParametersRequest>(body, |_| Ok(())),
        4 => on::<pb::GetServerStatsRequest>(body, |_| Ok(())),
        5 => on::<pb::WhoAmIRequest>(body, |_| Ok(())),
        6 => on::<pb::ListAuditEntriesRequest>(body, |r| audit_query(r).map(drop)),
        7 => on::<pb::ControlEngineRequest>(body, |r| {
            checked_control(r.action.ok_or(ApiError::MissingField { field: "action" })?)
        }),
        8 => on::<pb::ListScheduledCommandsRequest>(body, |_| Ok(())),
        9 => on::<pb::CancelScheduledCommandRequest>(body, |r| checked_id(r.command_id)),
        _ => on::<pb::RevertCommandRequest>(body, |r| checked_id(r.command_id)),
    }
}

/// The legacy WebSocket's JSON frames: `ws::parse`, then the checks the
/// session runs on what it parsed. A refusal is `INVALID_JSON` or
/// `INVALID_MESSAGE` with a message; what parses serialises back to JSON that
/// parses to the same message.
pub fn websocket_json(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let message = match ws::parse(text) {
        Ok(message) => message,
        Err(refusal) => {
            assert!(
                matches!(refusal.code.as_str(), "INVALID_JSON" | "INVALID_MESSAGE"),
                "unexpected code {:?}",
                refusal.code
            );
            assert!(!refusal.message.is_empty(), "a refusal says why");
            return;
        }
    };
    let json = serde_json::to_string(&message).expect("a parsed message serialises");
    // serde_json writes a non-finite double as `null`, which the parser
    // refuses, so only finite messages can round-trip.
    if finite(&message) {
        let again = ws::parse(&json).expect("the server's own JSON parses");
        let json_again = serde_json::to_string(&again).expect("a parsed message serialises");
        assert_eq!(json, json_again, "JSON does not round-trip");
    }
    let checked = match message.message {
        None
        | Some(WsMessage::Auth(_) | WsMessage::ListParameters(_) | WsMessage::ListScheduled(_)) => {
            Ok(())
        }
        Some(WsMessage::CancelScheduled(cancel)) => {
            required_command_id(cancel.command_id.clone()).map(drop)
        }
        Some(WsMessage::Command(command)) => checked_command(&command, "command"),
        Some(WsMessage::Commands(batch)) => checked_batch(&batch.commands),
        Some(WsMessage::Subscribe(s)) => telemetry_interval(s.interval_ms).map(drop),
        Some(WsMessage::Revert(revert)) => limits::check_command_id(&revert.command_id),
        Some(WsMessage::Control(control)) => control.action.map_or(Ok(()), checked_control),
    };
    refused_by_field(checked);
}

/// True if every double in a client message (command values, a pace) is
/// finite.
fn finite(message: &pb::WebSocketClientMessage) -> bool {
    let value = |v: &Option<pb::ParameterValue>| match v.as_ref().and_then(|v| v.kind) {
        Some(pb::parameter_value::Kind::Number(x)) => x.is_finite(),
        _ => true,
    };
    let command = |c: &pb::GodCommand| value(&c.value) && value(&c.expected_value);
    match &message.message {
        Some(WsMessage::Command(c)) => command(c),
        Some(WsMessage::Commands(batch)) => batch.commands.iter().all(command),
        Some(WsMessage::Control(control)) => match &control.action {
            Some(Action::SetTps(set)) => set.tps.is_finite(),
            _ => true,
        },
        _ => true,
    }
}

/// `--params` loading: any text either applies or is refused with a message,
/// and every parameter stays of its type and within its range either way.
pub fn params_yaml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut registry = defaults();
    if let Err(err) = registry.apply_overrides_yaml(text, "fuzz.yaml") {
        assert!(!err.to_string().is_empty(), "a refusal says why");
    }
    assert_within_ranges(&registry);
}

/// The registry's validate-and-apply path, as Phase 0 drives it: a sequence
/// of `set`, compare-and-set and start-up `set` on known or unknown keys with
/// any protobuf value. A refused operation changes nothing; an accepted one
/// stores exactly the value given; every value always stays in range.
pub fn registry_commands(data: &[u8]) {
    let mut registry = defaults();
    let mut input = Unstructured::new(data);
    let keys: Vec<String> = registry.iter().map(|(spec, _)| spec.key.clone()).collect();
    // Out of bytes, `arbitrary` goes on making defaults: stop at the end.
    while !input.is_empty() {
        let Ok(op) = Op::arbitrary(&mut input) else {
            break;
        };
        op.run(&mut registry, &keys);
        assert_within_ranges(&registry);
    }
}

/// One registry operation.
#[derive(Debug, Arbitrary)]
enum Op {
    Set(Key, FuzzValue),
    SetIf(Key, FuzzValue, FuzzValue),
    AtStartup(Key, FuzzValue),
}

/// A known key by index, or any string.
#[derive(Debug, Arbitrary)]
enum Key {
    Known(u8),
    Any(String),
}

/// A protobuf `ParameterValue`, with small numbers made likely (ranges are
/// narrow, and a random f64 almost never lands in one).
#[derive(Debug, Arbitrary)]
enum FuzzValue {
    Unset,
    Number(f64),
    Thousandths(i16),
    Integer(i64),
    Small(i8),
    Flag(bool),
}

impl FuzzValue {
    fn to_value(&self) -> Option<Value> {
        use pb::parameter_value::Kind;
        let kind = match *self {
            FuzzValue::Unset => return None,
            FuzzValue::Number(x) => Kind::Number(x),
            FuzzValue::Thousandths(x) => Kind::Number(f64::from(x) / 1000.0),
            FuzzValue::Integer(x) => Kind::Integer(x),
            FuzzValue::Small(x) => Kind::Integer(x.into()),
            FuzzValue::Flag(x) => Kind::Flag(x),
        };
        value_from_pb(&pb::ParameterValue { kind: Some(kind) })
    }
}

impl Op {
    fn run(&self, registry: &mut GlobalRegistry, keys: &[String]) {
        let (key, value) = match self {
            Op::Set(key, value) | Op::SetIf(key, value, _) | Op::AtStartup(key, value) => {
                (key.name(keys), value.to_value())
            }
        };
        let before = registry.values().to_vec();
        let mutable = registry.spec_by_key(key).is_some_and(|spec| spec.mutable);
        let result = match self {
            Op::Set(..) => registry.set(key, value),
            Op::SetIf(_, _, expected) => registry.set_if(key, value, expected.to_value()),
            Op::AtStartup(..) => match value {
                Some(value) => registry.set_at_startup(key, value).map(|()| (value, value)),
                None => return,
            },
        };
        match result {
            Err(_) => assert_eq!(registry.values(), &before[..], "a refusal changed {key}"),
            Ok((_, new)) => {
                assert!(
                    mutable || matches!(self, Op::AtStartup(..)),
                    "{key} is fixed"
                );
                assert_eq!(Some(new), value, "{key} stored another value");
                assert_eq!(registry.value_by_key(key), Some(new));
            }
        }
    }
}

impl Key {
    fn name<'a>(&'a self, keys: &'a [String]) -> &'a str {
        match self {
            Key::Known(i) => &keys[usize::from(*i) % keys.len()],
            Key::Any(key) => key,
        }
    }
}

/// The embedded defaults, parsed once.
fn defaults() -> GlobalRegistry {
    static DEFAULTS: OnceLock<GlobalRegistry> = OnceLock::new();
    DEFAULTS.get_or_init(GlobalRegistry::with_defaults).clone()
}

/// Every value has its parameter's type and lies within its bounds (checked
/// here from the schema, not through the registry's own check).
fn assert_within_ranges(registry: &GlobalRegistry) {
    for (spec, value) in registry.iter() {
        assert_eq!(
            spec.value_type,
            value_type(value),
            "{}: wrong type",
            spec.key
        );
        let within = match (value, spec.min, spec.max) {
            (Value::Number(x), Some(Value::Number(lo)), Some(Value::Number(hi))) => {
                x.is_finite() && lo <= x && x <= hi
            }
            (Value::Integer(x), Some(Value::Integer(lo)), Some(Value::Integer(hi))) => {
                lo <= x && x <= hi
            }
            (Value::Flag(_), None, None) => true,
            _ => false,
        };
        assert!(
            within,
            "{} = {value} is outside {}",
            spec.key,
            spec.allowed()
        );
    }
}

fn value_type(value: Value) -> ValueType {
    match value {
        Value::Number(_) => ValueType::Number,
        Value::Integer(_) => ValueType::Integer,
        Value::Flag(_) => ValueType::Flag,
    }
}

/// Decodes `body` as `T`; if it decodes, checks the round trip and runs
/// `check` on the message.
fn on<T: Message + Default>(body: &[u8], check: impl FnOnce(T) -> Result<(), ApiError>) {
    let Ok(message) = T::decode(body) else {
        return;
    };
    let bytes = message.encode_to_vec();
    let again = T::decode(&bytes[..]).expect("re-encoded bytes decode");
    assert_eq!(again.encode_to_vec(), bytes, "protobuf does not round-trip");
    refused_by_field(check(message));
}

/// A command passes `check_command` exactly when its strings fit.
fn checked_command(command: &pb::GodCommand, path: &str) -> Result<(), ApiError> {
    let result = limits::check_command(command, path);
    let fits = command.id.len() <= MAX_ID_BYTES
        && command.key.len() <= MAX_KEY_BYTES
        && command.reason.len() <= MAX_REASON_BYTES;
    assert_eq!(
        result.is_ok(),
        fits,
        "check_command disagrees with the limits"
    );
    result
}

/// A batch passes `check_batch` exactly when its size and every command fit
/// and none is scheduled for a later tick (a batch applies in one Phase 0).
fn checked_batch(commands: &[pb::GodCommand]) -> Result<(), ApiError> {
    let result = limits::check_batch(commands);
    let fits = (1..=MAX_BATCH_COMMANDS).contains(&commands.len())
        && commands
            .iter()
            .all(|c| checked_command(c, "commands[]").is_ok() && c.apply_at_tick == 0);
    assert_eq!(
        result.is_ok(),
        fits,
        "check_batch disagrees with the limits"
    );
    result
}

/// A control action passes when its step and pace are within bounds.
fn checked_control(action: Action) -> Result<(), ApiError> {
    let result = limits::check_control(&action);
    let fits = match &action {
        Action::Step(step) => (1..=limits::MAX_STEP_TICKS).contains(&step.ticks),
        Action::SetTps(set) => {
            set.tps.is_finite() && (0.0..=watchtower::config::MAX_TPS).contains(&set.tps)
        }
        Action::Pause(_) | Action::Resume(_) => true,
    };
    assert_eq!(
        result.is_ok(),
        fits,
        "check_control disagrees with the limits"
    );
    result
}

/// A revert's or cancellation's `command_id`: present and within its limit.
fn checked_id(command_id: String) -> Result<(), ApiError> {
    let id = required_command_id(command_id)?;
    limits::check_command_id(&id)
}

/// A refused request maps to `INVALID_ARGUMENT` with a `BadRequest` that
/// names the field and what it allows.
fn refused_by_field(result: Result<(), ApiError>) {
    let Err(err) = result else {
        return;
    };
    let status = Status::from(err);
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let bad_request = status
        .get_details_bad_request()
        .expect("a refusal carries BadRequest details");
    assert!(
        bad_request
            .field_violations
            .iter()
            .any(|v| !v.field.is_empty() && !v.description.is_empty()),
        "the BadRequest names the field and what it allows: {bad_request:?}"
    );
}
