//! What one HTTP client can hold: connections, and the time it takes to
//! send headers and bodies (`[server] max_connections`, `header_timeout`,
//! `body_timeout`; docs/limits.md).
//!
//! Connections are counted as they are accepted. At the limit, a new
//! connection does not wait and is not refused: the connection that has
//! been quiet longest (no byte read or written) is closed instead, idle
//! ones (no request in flight) before any with a request being served. Idle and
//! slow clients are the quiet ones, so a flood of them cannot keep a health
//! check or an ingest request out, and the process never runs out of file
//! descriptors (the limit is checked against the descriptor limit at start).

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_server::accept::Accept;
use prometheus::{IntCounterVec, IntGauge, Opts, Registry};
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use weir_core::metrics::Families;

/// Descriptors kept free for everything else (files, sockets, plugins).
pub const SPARE_DESCRIPTORS: u64 = 256;

#[derive(Clone)]
pub struct HttpMetrics {
    pub connections: IntGauge,
    /// Connections closed by the server, by reason: `evicted` (quiet
    /// longest at the limit), `body-timeout`.
    pub closed: IntCounterVec,
}

impl Families for HttpMetrics {
    fn register(r: &Registry) -> Self {
        let connections = IntGauge::new("weir_http_connections", "HTTP connections open now.").expect("valid metric");
        r.register(Box::new(connections.clone())).expect("metric registered once");
        let closed = IntCounterVec::new(
            Opts::new(
                "weir_http_connections_closed_total",
                "HTTP connections or requests the server cut short, by reason: evicted (quiet longest when \
                 max_connections was reached), body-timeout (408).",
            ),
            &["reason"],
        )
        .expect("valid metric");
        r.register(Box::new(closed.clone())).expect("metric registered once");
        for reason in ["evicted", "body-timeout"] {
            closed.with_label_values(&[reason]);
        }
        HttpMetrics { connections, closed }
    }
}

/// Makes sure `max_connections` plus [`SPARE_DESCRIPTORS`] fit the
/// process's descriptor limit, raising the soft limit toward the hard one
/// if needed; refuses to start when they cannot.
pub fn reserve_descriptors(max_connections: usize) -> anyhow::Result<()> {
    let need = max_connections as u64 + SPARE_DESCRIPTORS;
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Ok(()); // nothing to check against
    }
    if lim.rlim_cur >= need {
        return Ok(());
    }
    if lim.rlim_max >= need {
        let raised = libc::rlimit { rlim_cur: need, rlim_max: lim.rlim_max };
        // SAFETY: setrlimit reads the struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return Ok(());
        }
    }
    anyhow::bail!(
        "server.max_connections = {max_connections} needs {need} file descriptors with the {SPARE_DESCRIPTORS} kept \
         for the pipeline, but the process may open {} (hard limit {}): lower max_connections or raise `ulimit -n`",
        lim.rlim_cur,
        lim.rlim_max
    )
}

/// Connections the kernel queues before the server accepts them: a flood
/// of connects overflows a short queue, and then a health check's connect
/// waits for the client's SYN retry (a second or more).
const BACKLOG: i32 = 4096;

/// Binds `listen` (the first address it resolves to) with a long accept queue.
pub fn bind(listen: &str) -> io::Result<std::net::TcpListener> {
    use std::net::ToSocketAddrs;
    let addr = listen
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the address resolves to nothing"))?;
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// The open connections, shared by the acceptor and every connection.
struct Slots {
    max: usize,
    started: Instant,
    next: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Conn>>>,
    metrics: HttpMetrics,
}

struct Conn {
    /// When a byte last moved, milliseconds since the server started.
    last: AtomicU64,
    /// Between the first byte of a request read and its answer written:
    /// a request is in flight, so the connection is closed last.
    busy: AtomicBool,
    evicted: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Slots {
    fn now(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The acceptor that counts connections and evicts the quietest at the limit.
#[derive(Clone)]
pub struct Limit {
    slots: Arc<Slots>,
    /// Longest a new connection may stay silent (`header_timeout`): before
    /// hyper reads a request line (while it tells HTTP/1 from HTTP/2) its
    /// own header timeout has not started.
    first_byte: Duration,
}

impl Limit {
    pub fn new(max: usize, first_byte: Duration, metrics: HttpMetrics) -> Self {
        Limit {
            first_byte,
            slots: Arc::new(Slots {
                max,
                started: Instant::now(),
                next: AtomicU64::new(0),
                open: Mutex::new(HashMap::new()),
                metrics,
            }),
        }
    }

    fn track<T>(&self, inner: T) -> Tracked<T> {
        let s = &self.slots;
        let conn = Arc::new(Conn {
            last: AtomicU64::new(s.now()),
            busy: AtomicBool::new(false),
            evicted: AtomicBool::new(false),
            waker: Mutex::default(),
        });
        let id = s.next.fetch_add(1, Ordering::Relaxed);
        let mut open = s.lock();
        while open.len() >= s.max {
            // Idle connections (never sent a byte, or waiting between
            // requests) go first, then those with a request in flight.
            let quietest = open
                .iter()
                .min_by_key(|(id, c)| (c.busy.load(Ordering::Relaxed), c.last.load(Ordering::Relaxed), **id))
                .map(|(id, _)| *id);
            let Some(victim) = quietest.and_then(|id| open.remove(&id)) else { break };
            victim.evicted.store(true, Ordering::Release);
            if let Some(w) = victim.waker.lock().unwrap_or_else(|e| e.into_inner()).take() {
                w.wake();
            }
            s.metrics.closed.with_label_values(&["evicted"]).inc();
        }
        open.insert(id, conn.clone());
        s.metrics.connections.set(open.len() as i64);
        drop(open);
        let first_byte = Some(Box::pin(tokio::time::sleep(self.first_byte)));
        Tracked { inner, conn, id, slots: self.slots.clone(), first_byte }
    }
}

impl<S: Send + 'static> Accept<TcpStream, S> for Limit {
    type Stream = Tracked<TcpStream>;
    type Service = S;
    type Future = std::future::Ready<io::Result<(Tracked<TcpStream>, S)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        std::future::ready(Ok((self.track(stream), service)))
    }
}

/// A connection the server counts; it fails its next read or write once evicted.
pub struct Tracked<T> {
    inner: T,
    conn: Arc<Conn>,
    id: u64,
    slots: Arc<Slots>,
    /// Runs out if no byte arrives in time; gone after the first.
    first_byte: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<T> Tracked<T> {
    /// Err once evicted; otherwise remembers who to wake if it is.
    fn check(&self, cx: &Context<'_>) -> io::Result<()> {
        if !self.conn.evicted.load(Ordering::Acquire) {
            let mut w = self.conn.waker.lock().unwrap_or_else(|e| e.into_inner());
            if !w.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *w = Some(cx.waker().clone());
            }
        }
        if self.conn.evicted.load(Ordering::Acquire) {
            return Err(io::Error::new(io::ErrorKind::ConnectionAborted, "closed: quiet longest at max_connections"));
        }
        Ok(())
    }

    /// A byte moved: read (`true`, a request is coming in) or written (an answer).
    fn moved(&self, read: bool) {
        self.conn.last.store(self.slots.now(), Ordering::Relaxed);
        self.conn.busy.store(read, Ordering::Relaxed);
    }
}

impl<T> Drop for Tracked<T> {
    fn drop(&mut self) {
        let mut open = self.slots.lock();
        open.remove(&self.id);
        self.slots.metrics.connections.set(open.len() as i64);
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        self.check(cx)?;
        let before = buf.filled().len();
        let got = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(got, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.first_byte = None;
            self.moved(true);
        } else if got.is_pending()
            && let Some(deadline) = &mut self.first_byte
            && deadline.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no request within server.header_timeout",
            )));
        }
        got
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        self.check(cx)?;
        let put = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(put, Poll::Ready(Ok(n)) if n > 0) {
            self.moved(false);
        }
        put
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Settings the body-timeout middleware reads.
#[derive(Clone)]
pub struct BodyDeadline {
    pub timeout: Duration,
    pub metrics: HttpMetrics,
}

/// Gives the request's body `timeout` to arrive: a route still reading it
/// then fails, and the client gets 408 and a closed connection. Size limits
/// stay with the routes (413).
pub async fn body_deadline(State(d): State<BodyDeadline>, req: Request, next: Next) -> Response {
    let fired = Arc::new(AtomicBool::new(false));
    let req = req.map(|inner| {
        axum::body::Body::new(TimedBody { inner, sleep: Box::pin(tokio::time::sleep(d.timeout)), fired: fired.clone() })
    });
    let response = next.run(req).await;
    if !fired.load(Ordering::Relaxed) {
        return response;
    }
    d.metrics.closed.with_label_values(&["body-timeout"]).inc();
    let mut r = (
        StatusCode::REQUEST_TIMEOUT,
        format!("the request body was not sent within {}s (server.body_timeout)\n", d.timeout.as_secs_f64()),
    )
        .into_response();
    r.headers_mut().insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
    r
}

struct TimedBody {
    inner: axum::body::Body,
    sleep: Pin<Box<tokio::time::Sleep>>,
    fired: Arc<AtomicBool>,
}

impl http_body::Body for TimedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        if self.sleep.as_mut().poll(cx).is_ready() {
            self.fired.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(axum::Error::new("the body was not sent within server.body_timeout"))));
        }
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
