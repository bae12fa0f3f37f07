//! Commands before telemetry, on the CPU: two lanes for the network.
//!
//! Every connection starts in the command lane: a runtime of one thread
//! that runs `--command-nice` below the engine, above the telemetry
//! fan-out's threads (`--network-nice`). It accepts, checks, queues and
//! answers. The first request that opens telemetry (`SubscribeTelemetry`,
//! on gRPC or gRPC-Web, or a WebSocket upgrade) moves its whole connection
//! to the telemetry lane, the network runtime: the connection's task, its
//! socket's registration and every request task it starts from then on.
//! So when many watch, the fan-out's work queues on the telemetry lane's
//! threads and the kernel gives a command's thread the CPU first. A
//! connection that carries both stays in the telemetry lane; an operator's
//! tool that wants its commands to go first uses a connection of its own
//! for them.
//!
//! hyper asks the connection's executor ([`LaneExecutor`]) to start each
//! HTTP/2 request's task only after our service has seen the request, so a
//! telemetry request is marked before its own task starts, and that task
//! runs in the telemetry lane from its first poll.

use std::{
    future::Future,
    io,
    pin::Pin,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
};

use hyper::http::{Request, header};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
    runtime::{Handle, Runtime},
};
use tokio_util::task::TaskTracker;

/// The gRPC path of the telemetry stream (gRPC-Web uses the same path).
const SUBSCRIBE_PATH: &str = "/watchtower.v1.WatchtowerService/SubscribeTelemetry";

/// The command lane's runtime, started once per process by
/// [`start_command_lane`]; never dropped.
static COMMAND_LANE: OnceLock<Runtime> = OnceLock::new();

thread_local! {
    /// True on the command lane's threads.
    static ON_COMMAND_LANE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Starts the command lane's runtime: one thread, `nice` below the calling
/// thread (call it from a thread at the engine's priority). Without it,
/// both lanes are the runtime that serves (in-process servers in tests).
pub fn start_command_lane(nice: i32) -> io::Result<()> {
    if COMMAND_LANE.get().is_some() {
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("watchtower-cmd")
        .enable_all()
        .on_thread_start(move || {
            ON_COMMAND_LANE.set(true);
            crate::priority::lower_this_thread(nice);
        })
        .build()?;
    // A second caller racing this one drops its runtime here, on a plain
    // thread, which is allowed.
    let _ = COMMAND_LANE.set(runtime);
    Ok(())
}

/// The two runtimes a listener's connections run on.
#[derive(Debug, Clone)]
pub struct Lanes {
    commands: Handle,
    telemetry: Handle,
    /// False when both are the same runtime (no command lane started).
    separate: bool,
}

impl Lanes {
    /// The command lane if started, and the calling runtime for telemetry.
    pub fn current() -> Self {
        let telemetry = Handle::current();
        let command_lane = COMMAND_LANE.get();
        Self {
            commands: command_lane.map_or_else(|| telemetry.clone(), |r| r.handle().clone()),
            telemetry,
            separate: command_lane.is_some(),
        }
    }

    /// Tasks alive on both lanes' runtimes.
    pub fn alive_tasks(&self) -> usize {
        let telemetry = self.telemetry.metrics().num_alive_tasks();
        if self.separate {
            telemetry + self.commands.metrics().num_alive_tasks()
        } else {
            telemetry
        }
    }

    /// The command lane's runtime.
    pub fn commands(&self) -> &Handle {
        &self.commands
    }

    /// The telemetry lane's runtime.
    pub fn telemetry(&self) -> &Handle {
        &self.telemetry
    }

    /// Runs a new connection, `serve`, in the command lane until it opens
    /// telemetry, tracked by `tracker` in either lane.
    pub fn spawn_connection<F>(&self, tracker: &TaskTracker, lane: Arc<Lane>, serve: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let moving = Moving {
            serve: Some(Box::pin(serve)),
            lane,
            tracker: tracker.clone(),
        };
        tracker.spawn_on(moving, &self.commands);
    }
}

/// One connection's lane: the command lane until it opens telemetry.
#[derive(Debug)]
pub struct Lane {
    lanes: Lanes,
    telemetry: AtomicBool,
}

impl Lane {
    /// A new connection, in the command lane.
    pub fn new(lanes: Lanes) -> Arc<Self> {
        Arc::new(Self {
            lanes,
            telemetry: AtomicBool::new(false),
        })
    }

    /// Moves the connection to the telemetry lane if `request` opens
    /// telemetry. Called by the connection's service as hyper hands it the
    /// request, before the request's task is started.
    pub fn note<B>(&self, request: &Request<B>) {
        if !self.carries_telemetry() && opens_telemetry(request) {
            self.telemetry.store(true, Ordering::Release);
        }
    }

    /// True once the connection has opened telemetry.
    pub fn carries_telemetry(&self) -> bool {
        self.telemetry.load(Ordering::Acquire)
    }

    /// The runtime the connection's work runs on now.
    pub fn runtime(&self) -> &Handle {
        if self.carries_telemetry() {
            &self.lanes.telemetry
        } else {
            &self.lanes.commands
        }
    }

    /// Both lanes.
    pub fn lanes(&self) -> &Lanes {
        &self.lanes
    }
}

/// A telemetry stream, or a WebSocket (whose session carries telemetry).
fn opens_telemetry<B>(request: &Request<B>) -> bool {
    request.uri().path() == SUBSCRIBE_PATH
        || request
            .headers()
            .get(header::UPGRADE)
            .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"websocket"))
}

/// hyper's executor for one connection: starts each request's task in the
/// connection's lane at that moment.
#[derive(Debug, Clone)]
pub struct LaneExecutor(pub Arc<Lane>);

impl<F> hyper::rt::Executor<F> for LaneExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        self.0.runtime().spawn(fut);
    }
}

/// A connection's task in the command lane: once the connection opens
/// telemetry, it hands the rest of the connection to the telemetry lane
/// and ends.
struct Moving {
    serve: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    lane: Arc<Lane>,
    tracker: TaskTracker,
}

impl Future for Moving {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Some(serve) = self.serve.as_mut() else {
            return Poll::Ready(());
        };
        if serve.as_mut().poll(cx).is_ready() {
            return Poll::Ready(());
        }
        // Only this task's poll can mark the connection (its service runs
        // in it), so looking after each poll misses nothing.
        if self.lane.carries_telemetry()
            && let Some(serve) = self.serve.take()
        {
            let tracked = self.tracker.track_future(serve);
            self.lane.lanes.telemetry.spawn(tracked);
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

/// A connection's socket, registered with the runtime whose thread polls
/// it: when its connection moves lanes, the socket's readiness moves too,
/// so the command lane's thread never dispatches telemetry's I/O.
pub struct LaneSocket {
    tcp: Option<TcpStream>,
    on_command_lane: bool,
}

impl LaneSocket {
    /// `tcp`, as registered when accepted.
    pub fn new(tcp: TcpStream) -> Self {
        Self {
            tcp: Some(tcp),
            on_command_lane: ON_COMMAND_LANE.get(),
        }
    }

    /// The socket, registered with the calling thread's runtime.
    fn here(&mut self) -> io::Result<&mut TcpStream> {
        let here = ON_COMMAND_LANE.get();
        if here != self.on_command_lane {
            let tcp = self.tcp.take().ok_or_else(moved_away)?;
            self.tcp = Some(TcpStream::from_std(tcp.into_std()?)?);
            self.on_command_lane = here;
        }
        self.tcp.as_mut().ok_or_else(moved_away)
    }
}

/// A failed re-registration leaves no socket behind.
fn moved_away() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "the socket could not change lanes",
    )
}

/// Runs `op` on the socket, registered with the calling thread's runtime.
fn on_socket<T>(
    socket: Pin<&mut LaneSocket>,
    op: impl FnOnce(Pin<&mut TcpStream>) -> Poll<io::Result<T>>,
) -> Poll<io::Result<T>> {
    match socket.get_mut().here() {
        Ok(tcp) => op(Pin::new(tcp)),
        Err(err) => Poll::Ready(Err(err)),
    }
}

impl AsyncRead for LaneSocket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        on_socket(self, |tcp| tcp.poll_read(cx, buf))
    }
}

impl AsyncWrite for LaneSocket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        on_socket(self, |tcp| tcp.poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        on_socket(self, |tcp| tcp.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        on_socket(self, |tcp| tcp.poll_shutdown(cx))
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};

    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

    use super::*;

    fn runtime(name: &str, command_lane: bool) -> Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(name)
            .enable_all()
            .on_thread_start(move || ON_COMMAND_LANE.set(command_lane))
            .build()
            .unwrap()
    }

    /// A line server standing in for HTTP: it answers each line with the
    /// name of the thread that served it; the line `subscribe` asks for
    /// telemetry, as a `SubscribeTelemetry` request would.
    async fn serve_lines(tcp: LaneSocket, lane: Arc<Lane>) {
        let mut lines = tokio::io::BufReader::new(tcp);
        let mut line = String::new();
        while lines.read_line(&mut line).await.unwrap() > 0 {
            if line.trim() == "subscribe" {
                let request = Request::post(SUBSCRIBE_PATH).body(()).unwrap();
                lane.note(&request);
            }
            let thread = std::thread::current().name().unwrap_or("?").to_owned();
            lines
                .get_mut()
                .write_all(format!("{thread}\n").as_bytes())
                .await
                .unwrap();
            line.clear();
        }
    }

    #[test]
    fn a_connection_moves_to_the_telemetry_lane_with_its_socket_once_it_subscribes() {
        let commands = runtime("test-commands", true);
        let telemetry = runtime("test-telemetry", false);
        let lanes = Lanes {
            commands: commands.handle().clone(),
            telemetry: telemetry.handle().clone(),
            separate: true,
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        accepted.set_nonblocking(true).unwrap();
        let tracker = TaskTracker::new();
        let lane = Lane::new(lanes.clone());
        {
            let _guard = commands.enter();
            let tcp = LaneSocket::new(TcpStream::from_std(accepted).unwrap());
            lanes.spawn_connection(
                &tracker,
                Arc::clone(&lane),
                serve_lines(tcp, Arc::clone(&lane)),
            );
        }

        let mut replies = BufReader::new(client.try_clone().unwrap());
        let mut ask = |line: &str| {
            (&client).write_all(format!("{line}\n").as_bytes()).unwrap();
            let mut reply = String::new();
            replies.read_line(&mut reply).unwrap();
            reply.trim().to_owned()
        };
        assert_eq!(ask("status"), "test-commands");
        assert_eq!(ask("status"), "test-commands");
        // The request that subscribes is itself served where it arrived.
        assert_eq!(ask("subscribe"), "test-commands");
        assert!(lane.carries_telemetry());
        // Its socket now answers to the telemetry lane's driver: reads and
        // writes still work, from the other runtime's thread.
        for _ in 0..3 {
            assert_eq!(ask("status"), "test-telemetry");
        }
        client.shutdown(std::net::Shutdown::Both).unwrap();
        tracker.close();
        telemetry.block_on(tracker.wait());
    }

    #[test]
    fn request_tasks_start_in_the_connection_s_lane_at_that_moment() {
        use hyper::rt::Executor;

        let commands = runtime("test-commands", true);
        let telemetry = runtime("test-telemetry", false);
        let lane = Lane::new(Lanes {
            commands: commands.handle().clone(),
            telemetry: telemetry.handle().clone(),
            separate: true,
        });
        let executor = LaneExecutor(Arc::clone(&lane));
        let thread_of_a_task = || {
            let (tx, rx) = std::sync::mpsc::channel();
            executor.execute(async move {
                let _ = tx.send(std::thread::current().name().map(str::to_owned));
            });
            rx.recv().unwrap().unwrap()
        };
        assert_eq!(thread_of_a_task(), "test-commands");
        lane.note(
            &Request::get("/watchtower.v1.WatchtowerService/ApplyCommand")
                .body(())
                .unwrap(),
        );
        assert_eq!(thread_of_a_task(), "test-commands");
        lane.note(&Request::post(SUBSCRIBE_PATH).body(()).unwrap());
        assert_eq!(thread_of_a_task(), "test-telemetry");
    }

    #[test]
    fn only_telemetry_streams_and_websockets_open_telemetry() {
        let get = |path: &str| Request::get(path).body(()).unwrap();
        assert!(opens_telemetry(&get(SUBSCRIBE_PATH)));
        let upgrade = Request::get("/ws")
            .header(header::UPGRADE, "WebSocket")
            .body(())
            .unwrap();
        assert!(opens_telemetry(&upgrade));
        for path in [
            "/watchtower.v1.WatchtowerService/ApplyCommand",
            "/watchtower.v1.WatchtowerService/GetServerStats",
            "/grpc.health.v1.Health/Watch",
            "/metrics",
        ] {
            assert!(!opens_telemetry(&get(path)), "{path}");
        }
    }
}
