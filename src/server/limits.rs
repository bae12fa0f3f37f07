//! Every bound a client can hit on the API itself, named once: the sizes of
//! the strings in a command, the size of a request, the command rate of a
//! principal and the number of telemetry subscribers. (Connection limits
//! live in [`super::transport`], the queue's share rule in the bridge.)
//! docs/security.md has the table with the defaults. Runs on tokio workers.

use std::{
    num::NonZeroU32,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{body::Body, extract::Request, response::Response};
use governor::{
    Quota, RateLimiter,
    clock::{Clock, DefaultClock},
    state::keyed::DefaultKeyedStateStore,
};

use tonic::Status;

use super::error::ApiError;
use crate::{
    config::MAX_TPS,
    pb::{GodCommand, control_engine_request::Action},
};

/// Longest command id, in bytes.
pub const MAX_ID_BYTES: usize = 128;
/// Longest parameter key, in bytes.
pub const MAX_KEY_BYTES: usize = 128;
/// Longest reason, in bytes.
pub const MAX_REASON_BYTES: usize = 1024;
/// Largest request message the gRPC service decodes.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// How much of an oversized value an error message quotes.
pub const ECHO_PREFIX_BYTES: usize = 32;

/// The path prefix of the methods whose requests are one message each.
const UNARY_REQUESTS: &str = "/watchtower.v1.WatchtowerService/";
/// A gRPC message's prefix: a flag byte and a 4-byte length.
pub const FRAME_HEADER_BYTES: usize = 5;

/// True for the requests [`one_message`] applies to: those of
/// `WatchtowerService`, every one of whose methods takes one message.
pub fn holds_one_message(request: &Request) -> bool {
    request.uri().path().starts_with(UNARY_REQUESTS)
}

/// A `WatchtowerService` request body must hold exactly one message, so a
/// body with two is refused whole rather than half-applied (tonic would
/// read the first and drop the rest), and an empty one is refused with the
/// same kind of error. Bodies are small (at most [`MAX_REQUEST_BYTES`]), so
/// it reads the whole and hands on the request with the body read; the
/// refusal is the response to send. [`super::layers::OneMessageLayer`]
/// applies it.
pub async fn one_message(request: Request) -> Result<Request, Response> {
    let (parts, body) = request.into_parts();
    let limit = MAX_REQUEST_BYTES + FRAME_HEADER_BYTES;
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        Err(err) => {
            let too_large = std::error::Error::source(&err)
                .is_some_and(|e| e.is::<http_body_util::LengthLimitError>());
            let status = if too_large {
                Status::from(ApiError::RequestTooLarge {
                    max: MAX_REQUEST_BYTES,
                })
            } else {
                Status::cancelled(format!("the request body could not be read: {err}"))
            };
            return Err(status.into_http());
        }
    };
    match count_messages(&bytes) {
        0 => Err(Status::from(ApiError::NoMessage).into_http()),
        1 => Ok(Request::from_parts(parts, Body::from(bytes))),
        _ => Err(Status::from(ApiError::MultipleMessages).into_http()),
    }
}

/// How many gRPC messages start in `body` (what [`one_message`] counts).
/// Public for the fuzz targets.
pub fn count_messages(body: &[u8]) -> usize {
    let mut rest = body;
    let mut count = 0;
    while rest.len() >= FRAME_HEADER_BYTES {
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        count += 1;
        rest = rest.get(FRAME_HEADER_BYTES + len..).unwrap_or_default();
    }
    count
}

/// Refuses a command whose strings are too long, naming the field, before
/// anything is queued.
pub fn check_command(command: &GodCommand, path: &str) -> Result<(), ApiError> {
    for (field, value, max) in [
        ("id", &command.id, MAX_ID_BYTES),
        ("key", &command.key, MAX_KEY_BYTES),
        ("reason", &command.reason, MAX_REASON_BYTES),
    ] {
        check_len(|| format!("{path}.{field}"), value, max)?;
    }
    Ok(())
}

/// Refuses a `command_id` (of a revert or a cancellation) over its limit.
pub fn check_command_id(command_id: &str) -> Result<(), ApiError> {
    check_len(|| "command_id".to_owned(), command_id, MAX_ID_BYTES)
}

/// Refuses `value` if it is longer than `max` bytes, naming `field` and
/// quoting only a short prefix.
fn check_len(field: impl FnOnce() -> String, value: &str, max: usize) -> Result<(), ApiError> {
    if value.len() <= max {
        return Ok(());
    }
    Err(ApiError::TooLong {
        field: field(),
        len: value.len(),
        max,
        prefix: prefix(value, ECHO_PREFIX_BYTES).to_owned(),
    })
}

/// Most commands in one `ApplyCommands` batch.
pub const MAX_BATCH_COMMANDS: usize = 100;

/// Checks a batch: 1 to [`MAX_BATCH_COMMANDS`] commands, each within its
/// size limits (named by index, `commands[2].key`) and none scheduled for a
/// later tick (a batch applies in one Phase 0, the next).
pub fn check_batch(commands: &[GodCommand]) -> Result<(), ApiError> {
    if !(1..=MAX_BATCH_COMMANDS).contains(&commands.len()) {
        return Err(ApiError::InvalidField {
            field: "commands",
            value: format!("{} commands", commands.len()),
            allowed: "1 to 100 commands",
        });
    }
    for (i, command) in commands.iter().enumerate() {
        check_command(command, &format!("commands[{i}]"))?;
        if command.apply_at_tick != 0 {
            return Err(ApiError::ScheduledInBatch {
                field: format!("commands[{i}].apply_at_tick"),
                tick: command.apply_at_tick,
            });
        }
    }
    Ok(())
}

/// Most ticks one `step` may run.
pub const MAX_STEP_TICKS: u32 = 10_000;

/// Checks a control action's numbers: a step of 1 to [`MAX_STEP_TICKS`]
/// ticks, a pace of 0 to [`MAX_TPS`].
pub fn check_control(action: &Action) -> Result<(), ApiError> {
    match action {
        Action::Step(step) if !(1..=MAX_STEP_TICKS).contains(&step.ticks) => {
            Err(ApiError::InvalidField {
                field: "step.ticks",
                value: step.ticks.to_string(),
                allowed: "1 to 10000",
            })
        }
        Action::SetTps(set) if !(set.tps.is_finite() && (0.0..=MAX_TPS).contains(&set.tps)) => {
            Err(ApiError::InvalidField {
                field: "set_tps.tps",
                value: set.tps.to_string(),
                allowed: "0 (unthrottled) to 1000000",
            })
        }
        _ => Ok(()),
    }
}

/// The longest prefix of `text` of at most `max` bytes that ends on a
/// character boundary.
pub fn prefix(text: &str, max: usize) -> &str {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `--command-rate`: a token bucket per principal.
pub struct CommandRate {
    limiter: Option<RateLimiter<Arc<str>, DefaultKeyedStateStore<Arc<str>>, DefaultClock>>,
}

impl std::fmt::Debug for CommandRate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandRate")
            .field("limited", &self.limiter.is_some())
            .finish()
    }
}

impl CommandRate {
    /// `per_second` commands a second with a burst of one second's worth;
    /// 0 means no limit. The buckets are keyed by principal, and principals
    /// are the configured ones plus `anonymous`, so they stay few.
    pub fn new(per_second: f64) -> Self {
        let limiter = (per_second > 0.0).then(|| {
            let burst = NonZeroU32::new(per_second.ceil() as u32).unwrap_or(NonZeroU32::MIN);
            let quota = Quota::with_period(Duration::from_secs_f64(1.0 / per_second))
                .expect("a positive rate has a positive period")
                .allow_burst(burst);
            RateLimiter::keyed(quota)
        });
        Self { limiter }
    }

    /// Takes one command from `principal`'s bucket, or says how long to wait.
    pub fn check(&self, principal: &Arc<str>) -> Result<(), ApiError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter.check_key(principal).map_err(|not_until| {
            let retry_after = not_until.wait_time_from(DefaultClock::default().now());
            ApiError::RateLimited {
                principal: principal.to_string(),
                retry_after,
            }
        })
    }
}

/// `--max-subscribers`: telemetry streams and WebSocket sessions together.
#[derive(Debug, Clone)]
pub struct SubscriberSlots {
    open: Arc<AtomicUsize>,
    max: usize,
}

impl SubscriberSlots {
    /// At most `max` subscribers at once.
    pub fn new(max: usize) -> Self {
        Self {
            open: Arc::default(),
            max,
        }
    }

    /// A slot for one subscriber, held until the guard drops.
    pub fn acquire(&self) -> Result<SubscriberSlot, ApiError> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .map(|_| SubscriberSlot(Arc::clone(&self.open)))
            .map_err(|_| ApiError::TooManySubscribers { max: self.max })
    }

    /// Subscribers open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }
}

/// One subscriber's slot.
#[derive(Debug)]
pub struct SubscriberSlot(Arc<AtomicUsize>);

impl Drop for SubscriberSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_strings_are_refused_by_field_with_a_short_echo() {
        let command = GodCommand {
            reason: "é".repeat(600),
            ..Default::default()
        };
        let Err(ApiError::TooLong {
            field, len, prefix, ..
        }) = check_command(&command, "command")
        else {
            panic!("a 1200-byte reason must be refused");
        };
        assert_eq!((field.as_str(), len), ("command.reason", 1200));
        assert_eq!(prefix.len(), ECHO_PREFIX_BYTES);
    }

    #[test]
    fn messages_in_a_body_are_counted_by_their_prefixes() {
        let one = [0, 0, 0, 0, 2, 8, 1];
        assert_eq!(count_messages(&one), 1);
        assert_eq!(count_messages(&[one, one].concat()), 2);
        assert_eq!(count_messages(&[]), 0);
    }

    #[test]
    fn the_bucket_empties_and_names_a_wait() {
        let rate = CommandRate::new(2.0);
        let ops: Arc<str> = "ops".into();
        assert!(rate.check(&ops).is_ok());
        assert!(rate.check(&ops).is_ok());
        assert!(matches!(
            rate.check(&ops),
            Err(ApiError::RateLimited { .. })
        ));
        assert!(rate.check(&"other".into()).is_ok());
    }

    #[test]
    fn subscriber_slots_are_returned_on_drop() {
        let slots = SubscriberSlots::new(1);
        let slot = slots.acquire().unwrap();
        assert!(slots.acquire().is_err());
        drop(slot);
        assert!(slots.acquire().is_ok());
    }
}
