//! The accept loop: how many connections the server holds and how long a
//! connection may sit without sending a request or reading its response.
//!
//! `axum::serve` accepts every connection and waits on each forever, so
//! half-sent requests could hold sockets until the process ran out of file
//! descriptors. Here connections past `max_connections` wait in the
//! kernel's listen backlog until one closes; a request's line and headers
//! must arrive within `header_timeout` of its first byte (of connecting,
//! for a connection's first request); a kept-alive connection may wait
//! `idle_timeout` for its next request; a response the client leaves
//! unread for `idle_timeout` closes the connection. Bodies and handlers
//! have their own limits (`super::deadline`).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::ConnectInfo;
use axum::http::{Request, Response};
use axum::Router;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

use super::Server;
use crate::config::Config;

/// File descriptors kept for everything but client connections: the
/// database pool, the listener, log and data files.
const RESERVED_FILES: u64 = 128;

/// Serves `server` on `listener` until `shutdown` resolves, then stops
/// accepting, lets in-flight requests finish (for as long as the
/// configured shutdown timeout; kept-alive connections close after their
/// current request) and returns, dropping `server` only then.
pub async fn serve(
    listener: TcpListener,
    server: Arc<impl Server>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let app = server.shared();
    let limits = ConnectionLimits {
        header: app.config.header_timeout,
        idle: app.config.idle_timeout,
    };
    let cap = connection_cap(&app.config);
    let slots = Arc::new(Semaphore::new(cap));
    let router = super::router(app.clone());
    let mut http = http1::Builder::new();
    // A backstop only: `Watched` closes such connections sooner.
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.idle + limits.header)
        .keep_alive(true);
    // Told to every connection at shutdown: each finishes the request in
    // flight and closes (hyper's graceful shutdown, done here because
    // hyper-util's does not take connections that may upgrade).
    let (stopping, stop) = tokio::sync::watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.map_err(io::Error::other)?,
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) if accept_failed(&err, &mut shutdown).await => break,
                Err(_) => continue,
            },
            () = &mut shutdown => break,
        };
        let activity = Arc::new(Activity::default());
        let io = TokioIo::new(Watched::new(stream, activity.clone(), limits));
        // A WebSocket takes the slot over (it outlives its upgrade).
        let slot = Arc::new(std::sync::Mutex::new(Some(slot)));
        let taken = Connection {
            activity: activity.clone(),
            slot: slot.clone(),
            stop: stop.clone(),
        };
        let connection = http
            .serve_connection(io, requests(router.clone(), peer, taken))
            .with_upgrades();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let closed = tokio::select! {
                closed = connection.as_mut() => closed,
                _ = async { stop.wait_for(|stopping| *stopping).await.map(drop) } => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(err) = closed {
                tracing::debug!(%peer, "connection closed: {err}");
            }
            drop(slot);
        });
    }
    drop(listener);
    let patience = app.config.shutdown_timeout;
    let _ = stopping.send(true);
    let all = u32::try_from(cap).unwrap_or(u32::MAX);
    if tokio::time::timeout(patience, slots.acquire_many(all)).await.is_err() {
        tracing::warn!(
            timeout_ms = patience.as_millis(),
            "requests still in flight after the shutdown timeout; stopping anyway"
        );
    }
    Ok(())
}

/// After a failed accept: goes on at once for a connection the client gave
/// up on; after a pause when the process is out of file descriptors or
/// memory, rather than spinning until connections close. True when
/// `shutdown` resolved meanwhile.
async fn accept_failed(err: &io::Error, shutdown: &mut Pin<&mut impl Future<Output = ()>>) -> bool {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(err.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        return false;
    }
    tracing::error!("accepting a connection: {err}");
    tokio::select! {
        () = tokio::time::sleep(Duration::from_millis(250)) => false,
        () = shutdown.as_mut() => true,
    }
}

/// The connections the server holds at once: the configured number, kept
/// below the open-file limit (raised to its hard limit first).
fn connection_cap(config: &Config) -> usize {
    let wanted = config.max_connections.max(1);
    let Some(files) = raise_open_file_limit() else {
        return wanted;
    };
    let reserved = RESERVED_FILES + u64::try_from(config.pool_size).unwrap_or(u64::MAX);
    let room = usize::try_from(files.saturating_sub(reserved))
        .unwrap_or(usize::MAX)
        .max(1);
    if wanted > room {
        tracing::warn!(
            max_connections = wanted,
            open_file_limit = files,
            "lowering max_connections to {room} to stay below the open-file limit (raise it with ulimit -n)"
        );
        return room;
    }
    wanted
}

/// Raises the soft limit of open files to the hard limit; the soft limit
/// in force afterwards, if the kernel tells.
#[allow(unsafe_code)]
fn raise_open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit through a pointer to a live local.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit reads one rlimit through a pointer to a live local.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit = raised;
        }
    }
    Some(limit.rlim_cur)
}

/// How long a connection may go without a request or without progress.
#[derive(Debug, Clone, Copy)]
struct ConnectionLimits {
    header: Duration,
    idle: Duration,
}

/// What a connection's requests are doing, shared by its service (which
/// sees requests arrive and responses end) and its socket (which closes
/// the connection when it sits too long).
#[derive(Debug, Default)]
struct Activity {
    /// Requests whose line and headers have arrived.
    started: AtomicU64,
    /// Requests whose response is not yet sent in full.
    open: AtomicUsize,
}

/// The connection a request came on, for a handler that takes it over (a
/// WebSocket upgrade).
#[derive(Debug, Clone)]
pub(super) struct Connection {
    activity: Arc<Activity>,
    /// Its place among the connections the server holds at once.
    slot: Arc<std::sync::Mutex<Option<tokio::sync::OwnedSemaphorePermit>>>,
    /// True once the server is shutting down.
    stop: tokio::sync::watch::Receiver<bool>,
}

impl Connection {
    /// Takes the connection over for a WebSocket, which outlives its
    /// upgrade request: it stays busy (no idle timeout) and keeps its
    /// place among the server's connections until the answer is dropped.
    pub(super) fn hold_open(&self) -> HeldOpen {
        HeldOpen {
            _open: OpenRequest::start(self.activity.clone()),
            _slot: self
                .slot
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take(),
            stop: self.stop.clone(),
        }
    }
}

/// A connection taken over.
#[derive(Debug)]
pub(super) struct HeldOpen {
    _open: OpenRequest,
    _slot: Option<tokio::sync::OwnedSemaphorePermit>,
    stop: tokio::sync::watch::Receiver<bool>,
}

impl HeldOpen {
    /// Resolves when the server starts shutting down.
    pub(super) async fn stopping(&mut self) {
        let _ = self.stop.wait_for(|stopping| *stopping).await;
    }
}

/// Counts a request as open until dropped with its response's body.
#[derive(Debug)]
struct OpenRequest(Arc<Activity>);

impl OpenRequest {
    fn start(activity: Arc<Activity>) -> Self {
        // `open` first: a socket that sees the new `started` sees it open.
        activity.open.fetch_add(1, Ordering::SeqCst);
        activity.started.fetch_add(1, Ordering::SeqCst);
        OpenRequest(activity)
    }
}

impl Drop for OpenRequest {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The router as one connection's service: each request carries the
/// client's address (`ConnectInfo`) and is counted open until its
/// response is sent.
fn requests(
    router: Router,
    peer: SocketAddr,
    connection: Connection,
) -> impl hyper::service::Service<Request<Incoming>, Response = Response<Sent>, Error = Infallible, Future: Send> + Clone
{
    hyper::service::service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        request.extensions_mut().insert(connection.clone());
        let open = OpenRequest::start(connection.activity.clone());
        let response = router.clone().oneshot(request);
        async move {
            let response = response.await?;
            Ok(response.map(|body| Sent { body, _open: open }))
        }
    })
}

/// A response body that keeps its request counted open until it is sent.
#[derive(Debug)]
struct Sent {
    body: Body,
    _open: OpenRequest,
}

impl HttpBody for Sent {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Where a connection stands, as its socket sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// A request's line and headers are arriving: they must be complete
    /// by the deadline.
    Head,
    /// Requests are being answered: their limits are `super::deadline`'s.
    Busy,
    /// Kept alive between requests: the next must start by the deadline.
    Idle,
}

/// A client's socket that ends the connection when a request's headers
/// or the next request take too long, or the client stops reading.
#[derive(Debug)]
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
    limits: ConnectionLimits,
    phase: Phase,
    /// `activity.started` when last looked at.
    seen: u64,
    /// The end of the `Head` or `Idle` phase.
    deadline: Pin<Box<Sleep>>,
    /// Since when a write waits for the client to read, if one does.
    write_stall: Option<Pin<Box<Sleep>>>,
}

impl Watched {
    fn new(stream: TcpStream, activity: Arc<Activity>, limits: ConnectionLimits) -> Self {
        Watched {
            stream,
            activity,
            limits,
            // A connection's first request counts from the connection.
            phase: Phase::Head,
            seen: 0,
            deadline: Box::pin(tokio::time::sleep(limits.header)),
            write_stall: None,
        }
    }

    /// Follows the requests: busy once one arrived, idle once all are answered.
    fn observe(&mut self) {
        let started = self.activity.started.load(Ordering::SeqCst);
        if started != self.seen {
            self.seen = started;
            self.phase = Phase::Busy;
        }
        if self.phase == Phase::Busy && self.activity.open.load(Ordering::SeqCst) == 0 {
            self.phase = Phase::Idle;
            self.deadline.as_mut().reset(Instant::now() + self.limits.idle);
        }
    }

    /// A write's result, or an error once the client has left a response
    /// unread for the idle timeout.
    fn stall(&mut self, cx: &mut Context<'_>, written: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        if written.is_ready() {
            self.write_stall = None;
            return written;
        }
        let idle = self.limits.idle;
        let stall = self
            .write_stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
        match stall.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped reading its response",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for Watched {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.observe();
        // Checked before reading too: a client that keeps sending never
        // leaves the read pending.
        if this.phase == Phase::Head && Instant::now() >= this.deadline.deadline() {
            return Poll::Ready(Err(header_timeout()));
        }
        let before = buf.filled().len();
        let read = Pin::new(&mut this.stream).poll_read(cx, buf);
        match (this.phase, &read) {
            (Phase::Busy, _) | (_, Poll::Ready(Err(_))) => read,
            (phase, Poll::Ready(Ok(()))) => {
                if phase == Phase::Idle && buf.filled().len() > before {
                    this.phase = Phase::Head;
                    this.deadline.as_mut().reset(Instant::now() + this.limits.header);
                }
                read
            }
            (phase, Poll::Pending) => match this.deadline.as_mut().poll(cx) {
                Poll::Pending => Poll::Pending,
                // The end of the stream: the connection closes quietly.
                Poll::Ready(()) if phase == Phase::Idle => Poll::Ready(Ok(())),
                Poll::Ready(()) => Poll::Ready(Err(header_timeout())),
            },
        }
    }
}

fn header_timeout() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "the request's line and headers took longer than the header timeout",
    )
}

impl AsyncWrite for Watched {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.stall(cx, written)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.stall(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
