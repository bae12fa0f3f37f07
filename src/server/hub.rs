//! `TelemetryHub`: the server's one follower of the `TelemetryExchange`.
//!
//! A single task wakes on each newly published snapshot and turns it into a
//! [`Frame`]: the snapshot (shared with the exchange, not copied) plus its
//! gRPC encoding, made exactly once however many subscribers there are. It
//! keeps the last frames in a ring for late joiners
//! (`SubscribeTelemetryRequest.history`), bounded both in frames and in
//! bytes, and offers the newest to subscribers group by group
//! ([`Fanout`]), so each subscriber holds at most one frame, never wakes the
//! engine, and never crowds a command out. A [`Pacer`] per subscriber turns
//! that into push on publish: one wake-up per published frame, and a timer
//! only for a stream whose interval is not yet up. At very high tick rates
//! the hub follows the snapshots it is woken for, so consecutive frames may
//! skip ticks; at the default 10 ticks/s it sees every one. Runs on the
//! tokio runtime.

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex, OnceLock, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use axum::extract::ws::Utf8Bytes;
use prost::{
    Message,
    bytes::{Buf, BufMut, Bytes},
    encoding::{DecodeContext, WireType},
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{fanout::Fanout, limits::FRAME_HEADER_BYTES};
use crate::{bridge::TelemetryReader, pb::WatchtowerSnapshot, store::manifest::unix_ms};

/// A `SubscribeTelemetryResponse` already encoded and framed as a gRPC
/// message (the 5-byte prefix, then the message), made once per snapshot.
/// The gRPC streams send these bytes as they are ([`super::framed`]); the
/// generated service's codec, which would copy them, never sees them on
/// the wire path. It is never decoded.
#[derive(Debug, Clone, Default)]
pub struct EncodedTelemetry(Bytes);

impl EncodedTelemetry {
    /// Encodes `SubscribeTelemetryResponse { snapshot }` behind its prefix.
    fn encode(snapshot: &WatchtowerSnapshot) -> Self {
        // `SubscribeTelemetryResponse { snapshot = 1 }` on the wire is just
        // field 1 holding the snapshot, so encode it in place, no copy.
        let len = prost::encoding::message::encoded_len(1, snapshot);
        let mut framed = Vec::with_capacity(FRAME_HEADER_BYTES + len);
        framed.put_u8(0);
        framed.put_u32(u32::try_from(len).expect("a snapshot is far below 4 GiB"));
        prost::encoding::message::encode(1, snapshot, &mut framed);
        Self(framed.into())
    }

    /// The encoded `SubscribeTelemetryResponse`, shared, not copied (the
    /// broker publishes these same bytes).
    pub fn bytes(&self) -> Bytes {
        self.0.slice(FRAME_HEADER_BYTES.min(self.0.len())..)
    }

    /// The message with its gRPC prefix: one DATA frame of a gRPC stream.
    pub fn into_grpc_message(self) -> Bytes {
        self.0
    }
}

impl Message for EncodedTelemetry {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.bytes());
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        // Servers never decode their own responses; skip anything offered.
        prost::encoding::skip_field(wire_type, tag, buf, ctx)
    }

    fn encoded_len(&self) -> usize {
        self.0.len().saturating_sub(FRAME_HEADER_BYTES)
    }

    fn clear(&mut self) {
        self.0 = Bytes::new();
    }
}

/// One published snapshot, ready to send.
#[derive(Debug)]
pub struct Frame {
    /// The snapshot itself, shared with the exchange.
    pub snapshot: Arc<WatchtowerSnapshot>,
    /// Its `SubscribeTelemetryResponse` encoding.
    pub grpc: EncodedTelemetry,
    /// When the hub received it; subscribers space their messages on this
    /// clock (see [`Pacer`]).
    published: Instant,
    /// From the engine's capture (its wall clock) to `published`.
    capture_lag: Duration,
    /// Counts publications, so a snapshot republished with the same tick
    /// (a command applied while paused) is still a new frame.
    seq: u64,
    /// Its `{"snapshot": …}` JSON for the WebSocket path, made by the first
    /// WebSocket that needs it; clones share the bytes.
    json: OnceLock<Utf8Bytes>,
}

impl Frame {
    fn new(snapshot: Arc<WatchtowerSnapshot>, seq: u64) -> Self {
        let capture_lag_ms = unix_ms()
            .saturating_sub(snapshot.captured_at_unix_ms)
            .max(0);
        Self {
            grpc: EncodedTelemetry::encode(&snapshot),
            published: Instant::now(),
            capture_lag: Duration::from_millis(capture_lag_ms.unsigned_abs()),
            snapshot,
            seq,
            json: OnceLock::new(),
        }
    }

    /// How long after the engine captured it the frame was sent at `sent`:
    /// the send lag, with no clock read of its own.
    pub fn lag_at(&self, sent: Instant) -> Duration {
        self.capture_lag + sent.saturating_duration_since(self.published)
    }

    /// What the frame costs in memory, estimated: the decoded snapshot, its
    /// gRPC encoding and its JSON are each about the encoded size.
    pub fn weight(&self) -> usize {
        3 * self.grpc.0.len()
    }

    /// The tick of the snapshot.
    pub fn tick(&self) -> u64 {
        self.snapshot.tick
    }

    /// The frame's place in publication order: higher is newer.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The WebSocket message for this snapshot, encoded at most once.
    pub fn json(&self) -> Utf8Bytes {
        self.json
            .get_or_init(|| {
                let snapshot = serde_json::to_string(self.snapshot.as_ref())
                    .expect("generated serde impls always serialize");
                Utf8Bytes::from(format!("{{\"snapshot\":{snapshot}}}"))
            })
            .clone()
    }
}

/// Counters the hub and its subscribers keep.
#[derive(Debug, Default)]
pub struct HubStats {
    /// Frames encoded (one per snapshot the hub saw).
    pub encoded: AtomicU64,
    /// Frames handed to gRPC streams.
    pub delivered: AtomicU64,
}

/// The history ring and what it weighs.
#[derive(Debug, Default)]
struct Ring {
    frames: VecDeque<Arc<Frame>>,
    bytes: usize,
}

/// Follows the exchange; shared by every subscriber.
#[derive(Debug, Clone)]
pub struct TelemetryHub {
    /// The newest frame; subscribers wait on it.
    latest: watch::Receiver<Option<Arc<Frame>>>,
    /// The last frames, oldest first. Locked only to push one frame or clone
    /// a few `Arc`s out.
    ring: Arc<Mutex<Ring>>,
    cap: usize,
    /// Most bytes (by [`Frame::weight`]) the ring keeps.
    byte_cap: usize,
    stats: Arc<HubStats>,
    /// Where subscribers wait for their turn; closed when the hub stops
    /// (shutdown, or the engine stopped).
    fanout: Arc<Fanout>,
}

/// Ends every stream when the hub's task ends, however it ends.
struct CloseOnDrop(Arc<Fanout>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

impl TelemetryHub {
    /// Starts following `reader` until `shutdown`, keeping up to
    /// `history_cap` frames and `history_bytes` bytes of them.
    pub fn start(
        reader: TelemetryReader,
        history_cap: usize,
        history_bytes: usize,
        shutdown: CancellationToken,
    ) -> Self {
        let (tx, latest) = watch::channel(None);
        let hub = Self {
            latest,
            ring: Arc::default(),
            cap: history_cap,
            byte_cap: history_bytes,
            stats: Arc::default(),
            fanout: Arc::new(Fanout::default()),
        };
        tokio::spawn(hub.clone().run(reader, tx, shutdown));
        hub
    }

    /// Encodes each new snapshot and gives the subscribers their turns,
    /// until shutdown or the engine stops; then ends every stream.
    async fn run(
        self,
        mut reader: TelemetryReader,
        tx: watch::Sender<Option<Arc<Frame>>>,
        shutdown: CancellationToken,
    ) {
        let _close = CloseOnDrop(Arc::clone(&self.fanout));
        let mut last: Option<Arc<WatchtowerSnapshot>> = None;
        let mut seq = 0;
        loop {
            reader.mark_seen();
            if let Some(snapshot) = reader.latest()
                && last
                    .as_ref()
                    .is_none_or(|last| !Arc::ptr_eq(last, &snapshot))
            {
                last = Some(Arc::clone(&snapshot));
                seq += 1;
                let frame = Arc::new(Frame::new(snapshot, seq));
                self.stats.encoded.fetch_add(1, Ordering::Relaxed);
                self.remember(Arc::clone(&frame));
                tx.send_replace(Some(frame));
            }
            if self.fanout.pass(seq).await > 0 && !shutdown.is_cancelled() {
                continue;
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                changed = reader.changed() => if changed.is_err() { break },
                () = self.fanout.work() => {}
            }
        }
    }

    fn remember(&self, frame: Arc<Frame>) {
        if self.cap == 0 {
            return;
        }
        let mut ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        ring.bytes += frame.weight();
        ring.frames.push_back(frame);
        while ring.frames.len() > self.cap || ring.bytes > self.byte_cap {
            let Some(old) = ring.frames.pop_front() else {
                break;
            };
            ring.bytes -= old.weight();
        }
    }

    /// A receiver of every newest frame, unpaced: for followers of the hub
    /// itself (the metrics), not for subscribers.
    pub fn follow(&self) -> watch::Receiver<Option<Arc<Frame>>> {
        self.latest.clone()
    }

    /// A pacer for one subscriber at `interval` on connection `connection`
    /// that has already been sent up to the publication `last_seq`.
    pub fn pacer(&self, interval: Duration, last_seq: Option<u64>, connection: u64) -> Pacer {
        Pacer {
            frames: self.latest.clone(),
            fanout: Arc::clone(&self.fanout),
            shard: Fanout::shard_of(connection),
            admitted: false,
            interval,
            anchor: None,
            last_seq,
            sent_at: Instant::now(),
        }
    }

    /// The newest frame, if any.
    pub fn latest(&self) -> Option<Arc<Frame>> {
        self.latest.borrow().clone()
    }

    /// The last `n` frames, oldest first.
    pub fn history(&self, n: usize) -> Vec<Arc<Frame>> {
        let ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        let frames = &ring.frames;
        frames
            .iter()
            .skip(frames.len().saturating_sub(n))
            .cloned()
            .collect()
    }

    /// Frames and bytes the history ring holds now.
    pub fn history_size(&self) -> (usize, usize) {
        let ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        (ring.frames.len(), ring.bytes)
    }

    /// The most frames a subscriber may ask for.
    pub fn history_cap(&self) -> usize {
        self.cap
    }

    /// The hub's counters.
    pub fn stats(&self) -> &HubStats {
        &self.stats
    }

    /// The hub's counters, shared.
    pub fn stats_arc(&self) -> Arc<HubStats> {
        Arc::clone(&self.stats)
    }
}

/// One subscriber's pacing: the newest frame as soon as it is published,
/// provided the stream's interval is up; otherwise the newest one when it is.
/// Never the same publication twice (a paused engine republishes its tick
/// when a command applies, and that is a new frame). Either way it sends
/// only in its group's turn ([`Fanout`]), so telemetry never crowds out a
/// command.
///
/// The interval is counted from the publication of the frame last sent, not
/// from the moment the fan-out reached this stream, so a stream that the
/// fan-out happens to reach late on one tick is not pushed off the next
/// one. Only a stream sent more than a quarter interval after publication
/// (a reader the transport held back) counts from then less that quarter, so
/// messages are never less than three quarters of an interval apart.
#[derive(Debug)]
pub struct Pacer {
    /// The hub's newest frame, read (never awaited) after each turn.
    frames: watch::Receiver<Option<Arc<Frame>>>,
    /// The groups' gates, and the hub's stop.
    fanout: Arc<Fanout>,
    /// This stream's group.
    shard: usize,
    /// True once the stream's group has had a turn since its last send.
    admitted: bool,
    /// The minimum spacing the subscriber asked for.
    interval: Duration,
    /// Where the interval of the last message sent started.
    anchor: Option<Instant>,
    /// The publication last sent, so a snapshot is never sent twice.
    last_seq: Option<u64>,
    /// When the last frame was let go (its send lag is measured to here).
    sent_at: Instant,
}

impl Pacer {
    /// Changes the spacing; the interval already running is measured anew.
    pub fn set_interval(&mut self, interval: Duration) {
        self.interval = interval;
    }

    /// The next frame to send: the newest, once it is newer than the last
    /// sent and the interval is up. `None` once the hub has stopped
    /// (shutdown, or the engine stopped).
    /// Cancel-safe: dropped while waiting, the next call picks up the newest.
    pub async fn next(&mut self) -> Option<Arc<Frame>> {
        loop {
            if self.fanout.is_closed() {
                return None;
            }
            let newest = self.frames.borrow().clone();
            // Admitted by a turn of the stream's group; waiting out the
            // interval is not a turn.
            self.admitted = match newest {
                Some(frame) if self.last_seq.is_none_or(|last| frame.seq() > last) => {
                    // The one clock read of a delivery.
                    let now = Instant::now();
                    match self.due() {
                        Some(due) if now < due => {
                            self.admitted = false;
                            self.wait_until(due).await?;
                            false
                        }
                        _ if self.admitted => return Some(self.sent(frame, now)),
                        _ => {
                            self.fanout.ready(self.shard).await;
                            true
                        }
                    }
                }
                _ => {
                    let last = self.last_seq.unwrap_or(0);
                    self.fanout.fresh(self.shard, last).await;
                    true
                }
            };
        }
    }

    /// Waits out the interval. `None` if the hub stops first.
    async fn wait_until(&self, due: Instant) -> Option<()> {
        tokio::select! {
            () = self.fanout.stopped().cancelled() => None,
            () = tokio::time::sleep_until(due.into()) => Some(()),
        }
    }

    /// When the next message may go, if one has been sent.
    fn due(&self) -> Option<Instant> {
        self.anchor.map(|anchor| anchor + self.interval)
    }

    /// When the frame last returned by [`Pacer::next`] was let go.
    pub fn sent_at(&self) -> Instant {
        self.sent_at
    }

    fn sent(&mut self, frame: Arc<Frame>, now: Instant) -> Arc<Frame> {
        let slack = now
            .checked_sub(self.interval / 4)
            .unwrap_or(frame.published);
        self.anchor = Some(frame.published.max(slack));
        self.last_seq = Some(frame.seq());
        self.admitted = false;
        self.sent_at = now;
        frame
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::SubscribeTelemetryResponse;

    #[test]
    fn the_preencoded_frame_is_the_message_encoding() {
        let snapshot = Arc::new(WatchtowerSnapshot {
            tick: 42,
            ..Default::default()
        });
        let frame = Frame::new(Arc::clone(&snapshot), 1);
        let decoded =
            SubscribeTelemetryResponse::decode(frame.grpc.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded.snapshot.as_ref(), Some(snapshot.as_ref()));
        assert_eq!(frame.grpc.bytes(), frame.grpc.encode_to_vec());
        let framed = frame.grpc.clone().into_grpc_message();
        let (prefix, message) = framed.split_at(FRAME_HEADER_BYTES);
        assert_eq!(prefix[0], 0, "uncompressed");
        assert_eq!(
            prefix[1..],
            u32::try_from(message.len()).unwrap().to_be_bytes()
        );
        assert_eq!(message, frame.grpc.bytes());
        assert!(frame.json().starts_with("{\"snapshot\":{"));
        assert!(frame.json().contains("\"tick\":\"42\""), "{}", frame.json());
    }
}
