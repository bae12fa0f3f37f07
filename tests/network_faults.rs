//! Faults from the network side, against the real binary over real sockets:
//! a peer that vanishes without a FIN (found by keepalive), a client that
//! half-closes its connection, and SIGTERM under full command and subscriber
//! load (every call answered, the audit on disk consistent, exit 0).

mod common;

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use common::{binary::Binary, *};
use prost::Message;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream, tcp::OwnedReadHalf, tcp::OwnedWriteHalf},
    sync::{Notify, mpsc, watch},
};
use tonic::Code;
use watchtower::pb::{self, GetServerStatsRequest};

const KEY: &str = "fiscal.vat_rate";

/// A TCP proxy that forwards both ways until told to black-hole: from then
/// on it reads and drops everything, sending nothing and closing nothing,
/// as a peer whose machine vanished would. It reports when the server closes
/// its side.
struct BlackHoleProxy {
    addr: SocketAddr,
    hole: watch::Sender<bool>,
    server_closed: mpsc::UnboundedReceiver<()>,
}

impl BlackHoleProxy {
    async fn start(server: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("an address");
        let (hole, holes) = watch::channel(false);
        let (closed, server_closed) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let upstream = TcpStream::connect(server).await.expect("reach the server");
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = upstream.into_split();
                tokio::spawn(pump(client_read, server_write, holes.clone(), None));
                tokio::spawn(pump(
                    server_read,
                    client_write,
                    holes.clone(),
                    Some(closed.clone()),
                ));
            }
        });
        Self {
            addr,
            hole,
            server_closed,
        }
    }

    fn black_hole(&self) {
        self.hole.send_replace(true);
    }
}

/// Copies `from` to `to` until `from` ends, dropping the bytes once the hole
/// is open; says so on `closed` when `from` ends.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    hole: watch::Receiver<bool>,
    closed: Option<mpsc::UnboundedSender<()>>,
) {
    let mut buf = vec![0; 16 * 1024];
    while let Ok(n @ 1..) = from.read(&mut buf).await {
        if !*hole.borrow() {
            let _ = to.write_all(&buf[..n]).await;
        }
    }
    if let Some(closed) = closed {
        let _ = closed.send(());
    }
    // Keep the client's side open: a vanished peer sends no FIN either.
    std::mem::forget(to);
}

async fn stats(client: &mut Client) -> pb::GetServerStatsResponse {
    client
        .get_server_stats(GetServerStatsRequest {})
        .await
        .expect("GetServerStats")
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_vanishes_without_a_fin_is_dropped_by_keepalive() {
    let mut app = Binary::start(&[
        "--tps",
        "20",
        "--keepalive-interval",
        "0.5",
        "--keepalive-timeout",
        "0.5",
    ]);
    let addr = app.addr();
    let mut proxy = BlackHoleProxy::start(addr).await;
    let mut vanishing = connect(proxy.addr).await;
    let mut stream = subscribe(&mut vanishing, 10).await;
    next_snapshot(&mut stream).await;
    let mut direct = connect(addr).await;
    assert_eq!(stats(&mut direct).await.active_subscribers, 1);

    let vanished = Instant::now();
    proxy.black_hole();
    // The default keepalive (20 s + 20 s) could not find it within PATIENCE;
    // the configured one must.
    tokio::time::timeout(PATIENCE, proxy.server_closed.recv())
        .await
        .expect("the server closed the vanished peer's connection");
    let found = vanished.elapsed();
    eventually_async("the vanished stream is dropped", async || {
        stats(&mut direct).await.active_subscribers == 0
    })
    .await;
    println!("keepalive (0.5 s interval, 0.5 s timeout) closed the vanished peer after {found:?}");
    drop(stream);
}

/// Polls an async condition until it holds; panics after `PATIENCE`.
async fn eventually_async(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !done().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One gRPC-Web call over HTTP/1.1 on a raw socket, as raw bytes.
fn grpc_web_request(addr: SocketAddr, method: &str, message: &impl Message) -> Vec<u8> {
    let body = common::grpc_web::frame(message);
    let head = format!(
        "POST /watchtower.v1.WatchtowerService/{method} HTTP/1.1\r\n\
         Host: {addr}\r\n\
         Content-Type: application/grpc-web+proto\r\n\
         X-Grpc-Web: 1\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    [head.into_bytes(), body].concat()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_half_closes_still_gets_its_answer_and_its_stream_until_it_closes() {
    let mut app = Binary::start(&["--tps", "20"]);
    let addr = app.addr();
    let mut direct = connect(addr).await;

    // A command, then the client's FIN before the answer: the answer comes.
    let mut socket = TcpStream::connect(addr).await.expect("connect");
    let request = command("half-closed", KEY, number(0.17));
    socket
        .write_all(&grpc_web_request(addr, "ApplyCommand", &request))
        .await
        .expect("send the call");
    socket.shutdown().await.expect("half-close");
    let mut answer = Vec::new();
    tokio::time::timeout(PATIENCE, socket.read_to_end(&mut answer))
        .await
        .expect("the server answers and closes")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("grpc-status:0"), "{answer}");

    // A telemetry stream, then the client's FIN: the stream goes on, since
    // the client still reads; once it closes outright, the stream is dropped.
    let mut socket = TcpStream::connect(addr).await.expect("connect");
    let request = pb::SubscribeTelemetryRequest {
        interval_ms: 10,
        history: 0,
    };
    socket
        .write_all(&grpc_web_request(addr, "SubscribeTelemetry", &request))
        .await
        .expect("subscribe");
    let mut buf = vec![0u8; 64 * 1024];
    let n = tokio::time::timeout(PATIENCE, socket.read(&mut buf))
        .await
        .expect("the stream starts")
        .expect("read");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    socket.shutdown().await.expect("half-close");
    let mut after_fin = 0;
    while after_fin < 3 * 1024 {
        let n = tokio::time::timeout(PATIENCE, socket.read(&mut buf))
            .await
            .expect("frames keep coming after the FIN")
            .expect("read");
        assert!(n > 0, "the server closed a half-closed stream");
        after_fin += n;
    }
    assert_eq!(stats(&mut direct).await.active_subscribers, 1);
    drop(socket);
    eventually_async("the closed stream is dropped", async || {
        stats(&mut direct).await.active_subscribers == 0
    })
    .await;

    app.terminate();
    assert_eq!(app.wait_exit(PATIENCE).code(), Some(0));
    let applied = app
        .all_lines()
        .iter()
        .filter(|l| l.contains("command_id=half-closed") && l.contains("Registry updated"))
        .count();
    assert_eq!(applied, 1, "the half-closed client's command applied once");
}

/// Command connections, and calls in flight on each: together more than the
/// queue holds (100), each within its connection's share (25).
const COMMAND_CONNECTIONS: usize = 8;
const CALLS_PER_CONNECTION: usize = 16;
/// Telemetry subscribers, over a few connections.
const SUBSCRIBERS: usize = 32;

/// What one caller saw: the id it sent and the answer.
type Outcome = (String, Result<pb::GodResponse, tonic::Status>);

/// Sends commands one after another until the server stops answering.
async fn command_loop(
    mut client: Client,
    name: String,
    answered: Arc<AtomicUsize>,
    progress: Arc<Notify>,
) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    for n in 0u32.. {
        let id = format!("{name}-{n}");
        let value = 0.10 + f64::from(n % 10) / 100.0;
        let call = tokio::time::timeout(
            PATIENCE,
            client.apply_command(command(&id, KEY, number(value))),
        )
        .await
        .expect("every call is answered");
        let result = call.map(|r| r.into_inner().response.expect("a response"));
        let stop = match &result {
            Ok(_) => {
                answered.fetch_add(1, Ordering::Relaxed);
                progress.notify_waiters();
                false
            }
            Err(status) if status.code() == Code::ResourceExhausted => {
                // Queue full: back off as its RetryInfo asks, then go on.
                tokio::time::sleep(Duration::from_millis(20)).await;
                false
            }
            Err(_) => true,
        };
        outcomes.push((id, result));
        if stop {
            return outcomes;
        }
    }
    unreachable!("a caller stops when the server does")
}

/// Every entry of the run's audit log on disk, oldest first.
fn audit_on_disk(root: &std::path::Path) -> Vec<pb::GodResponse> {
    let run = std::fs::read_dir(root)
        .expect("the data directory")
        .map(|e| e.expect("an entry").path())
        .next()
        .expect("one run");
    std::fs::read_to_string(run.join("audit.jsonl"))
        .expect("the audit log")
        .lines()
        .map(|line| {
            let mut json: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            serde_json::from_value(json["entry"].take()).expect("a GodResponse")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_full_command_and_subscriber_load_answers_every_call_and_exits_cleanly() {
    let data = tempfile::tempdir().expect("a data directory");
    let root = data.path().join("runs");
    let root_arg = root.display().to_string();
    let mut app = Binary::start(&["--tps", "20", "--data-dir", &root_arg]);
    let addr = app.addr();

    let mut streams = Vec::new();
    for i in 0..SUBSCRIBERS {
        let mut client = connect(addr).await;
        let mut stream = subscribe(&mut client, 10).await;
        next_snapshot(&mut stream).await;
        streams.push(tokio::spawn(async move {
            let _client = client;
            let mut received = 1usize;
            loop {
                match tokio::time::timeout(PATIENCE, stream.message()).await {
                    Ok(Ok(Some(_))) => received += 1,
                    Ok(Ok(None)) => return Ok(received),
                    Ok(Err(status)) => return Err(format!("subscriber {i}: {status:?}")),
                    Err(_) => return Err(format!("subscriber {i}: never ended")),
                }
            }
        }));
    }
    let answered = Arc::new(AtomicUsize::new(0));
    let progress = Arc::new(Notify::new());
    let mut callers = Vec::new();
    for c in 0..COMMAND_CONNECTIONS {
        let client = connect(addr).await;
        for k in 0..CALLS_PER_CONNECTION {
            let name = format!("load-{c}-{k}");
            callers.push(tokio::spawn(command_loop(
                client.clone(),
                name,
                Arc::clone(&answered),
                Arc::clone(&progress),
            )));
        }
    }
    // Under load for a while: 300 answered commands (about 3 ticks' worth).
    while answered.load(Ordering::Relaxed) < 300 {
        tokio::time::timeout(PATIENCE, progress.notified())
            .await
            .expect("commands are being answered");
    }
    app.terminate();
    let status = tokio::task::block_in_place(|| app.wait_exit(PATIENCE));
    assert_eq!(status.code(), Some(0), "exit code after SIGTERM");

    let mut outcomes = Vec::new();
    for caller in callers {
        outcomes.extend(caller.await.expect("a caller task"));
    }
    let mut frames = 0;
    for stream in streams {
        frames += stream
            .await
            .expect("a subscriber task")
            .expect("the stream ended cleanly");
    }
    let audit = audit_on_disk(&root);
    let mut audited: HashMap<&str, &pb::GodResponse> = HashMap::new();
    for entry in &audit {
        assert!(
            audited.insert(&entry.command_id, entry).is_none(),
            "{} audited twice",
            entry.command_id
        );
    }
    let sent: HashSet<&str> = outcomes.iter().map(|(id, _)| id.as_str()).collect();
    assert!(
        audited.keys().all(|id| sent.contains(id)),
        "an audit entry nobody sent"
    );
    let mut codes: HashMap<String, (usize, String)> = HashMap::new();
    for (id, result) in &outcomes {
        match result {
            Ok(response) => assert_eq!(
                audited.get(id.as_str()),
                Some(&response),
                "{id} was answered but is not audited as answered"
            ),
            Err(status) => {
                let code = codes
                    .entry(format!("{:?}", status.code()))
                    .or_insert_with(|| (0, status.message().to_owned()));
                code.0 += 1;
            }
        }
    }
    let ok = outcomes.iter().filter(|(_, r)| r.is_ok()).count();
    println!(
        "SIGTERM under load: {} calls, {ok} applied and audited, failures by code (count, a message) {codes:?}, \
         {} audit entries, {SUBSCRIBERS} streams ended cleanly after {frames} frames",
        outcomes.len(),
        audit.len()
    );
    assert!(ok >= 300);
}
