//! rvsd's control threads: they take rvsadm's requests off the control socket and hand them to
//! the [`ControlState`], tick the estimator, serve the metrics endpoint and run the health
//! checks.
//!
//! Threads, all blocking (never spinning — the data path has the cores): one accepting on the
//! Unix socket (mode 0600), one per client (at most [`MAX_CLIENTS`]), one for the estimator
//! (every [`ESTIMATOR_PERIOD`]), one accepting metrics scrapes and one per scrape (at most
//! [`metrics::MAX_SCRAPERS`]). The state sits behind a
//! mutex on the control side only; workers see nothing but the snapshots the model publishes.
//!
//! Who may connect, how often, how many at once and how long a request may take are the
//! business of [`crate::access`]: the accepting thread checks the peer's uid, the connection
//! rate and the slots before a client thread starts; the client thread enforces its request
//! deadlines and request rate. Every refusal is an error answer and changes nothing.

use crate::access::{self, DeadlineReader, Limits, Peer, Refusal, Slot, Slots, TokenBucket};
use crate::config::RvsConfig;
use crate::estimator::ESTIMATOR_PERIOD;
use crate::health::{Checker, HealthCheck};
use crate::metrics;
use crate::model::ControlError;
use crate::state::{lock, ControlState};
use crate::views;
use proto::{ErrorKind, FrameError, Request, Response, MAX_FRAME};
use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

pub use crate::access::MAX_CLIENTS;

/// The health checks, restarted when a reload changes them.
type Checks = Arc<Mutex<Option<Checker>>>;

/// The running control threads.
pub struct Server {
    stop: Arc<AtomicBool>,
    socket: PathBuf,
    metrics: Option<std::net::SocketAddr>,
    threads: Vec<JoinHandle<()>>,
    state: Arc<Mutex<ControlState>>,
    checks: Checks,
    slots: Arc<Slots>,
}

impl Server {
    /// Listens on the Unix socket `path` (mode 0600; its directory is created if missing; a
    /// stale socket file is replaced, a live one is an error), optionally serves metrics on
    /// `metrics`, and runs the estimator, with the default [`Limits`].
    ///
    /// # Errors
    /// Socket or listener errors, an unsafe socket directory (see [`access::bind_socket`]), or
    /// another rvsd already answering on `path`.
    pub fn start(
        path: &Path,
        metrics: Option<std::net::SocketAddr>,
        state: Arc<Mutex<ControlState>>,
        checks: &[HealthCheck],
    ) -> io::Result<Server> {
        Server::start_with(path, metrics, state, checks, Limits::default())
    }

    /// [`Server::start`] with other limits.
    ///
    /// # Errors
    /// As [`Server::start`].
    pub fn start_with(
        path: &Path,
        metrics: Option<std::net::SocketAddr>,
        state: Arc<Mutex<ControlState>>,
        checks: &[HealthCheck],
        limits: Limits,
    ) -> io::Result<Server> {
        let listener = access::bind_socket(path)?;
        // The uid rvsd runs as owns the socket it just made.
        let owner = std::fs::metadata(path)?.uid();
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        lock(&state).set_checks(checks);
        let checker: Checks = Arc::new(Mutex::new(Some(start_checks(checks, &state))));
        let slots = Arc::new(Slots::new(limits.max_clients));

        let (st, sp, ck, sl) = (state.clone(), stop.clone(), checker.clone(), slots.clone());
        threads.push(
            std::thread::Builder::new()
                .name("rvs-control".into())
                .spawn(move || {
                    let mut rate = TokenBucket::new(
                        limits.connections_per_sec,
                        limits.connection_burst,
                        Instant::now(),
                    );
                    for conn in listener.incoming() {
                        if sp.load(Ordering::Acquire) {
                            break;
                        }
                        let conn = match conn {
                            Ok(c) => c,
                            Err(e) => {
                                // Out of descriptors, say: wait instead of spinning.
                                warn!(error = %e, "control socket: accept failed");
                                std::thread::sleep(Duration::from_millis(50));
                                continue;
                            }
                        };
                        let slot = match admit(&conn, owner, &mut rate, &sl, &limits) {
                            Ok(slot) => slot,
                            Err(refusal) => {
                                refuse(conn, &refusal);
                                continue;
                            }
                        };
                        let (st, ck, sl2, slot2) =
                            (st.clone(), ck.clone(), sl.clone(), slot.clone());
                        let spawned = std::thread::Builder::new().name("rvs-client".into()).spawn(
                            move || {
                                serve_client(conn, &slot2, &limits, &st, &ck);
                                sl2.leave(&slot2);
                            },
                        );
                        if spawned.is_err() {
                            warn!("could not start a thread for a control client");
                            sl.leave(&slot);
                        }
                    }
                })?,
        );

        let (st, sp) = (state.clone(), stop.clone());
        threads.push(
            std::thread::Builder::new()
                .name("rvs-estimator".into())
                .spawn(move || {
                    while !sp.load(Ordering::Acquire) {
                        std::thread::park_timeout(ESTIMATOR_PERIOD);
                        if sp.load(Ordering::Acquire) {
                            break;
                        }
                        lock(&st).tick(ESTIMATOR_PERIOD);
                    }
                })?,
        );

        let mut metrics_addr = None;
        if let Some(addr) = metrics {
            let l = TcpListener::bind(addr)?;
            metrics_addr = Some(l.local_addr()?);
            let (st, sp) = (state.clone(), stop.clone());
            threads.push(
                std::thread::Builder::new()
                    .name("rvs-metrics".into())
                    .spawn(move || {
                        metrics::serve(l, &sp, Arc::new(move || lock(&st).metrics()));
                    })?,
            );
        }
        info!(socket = %path.display(), metrics = ?metrics_addr, "control plane listening");
        Ok(Server {
            stop,
            socket: path.to_path_buf(),
            metrics: metrics_addr,
            threads,
            state,
            checks: checker,
            slots,
        })
    }

    /// Control clients being served now.
    pub fn clients(&self) -> usize {
        self.slots.live()
    }

    /// Applies a reloaded configuration (SIGHUP): the model, then the health checks.
    ///
    /// # Errors
    /// The configuration's error; nothing changes then.
    pub fn reload(&self, new: &RvsConfig) -> Result<(), ControlError> {
        {
            let mut st = lock(&self.state);
            st.reload(new)?;
            st.set_checks(&new.checks);
        }
        restart_checks(&self.checks, &new.checks, &self.state);
        Ok(())
    }

    /// The metrics address actually bound (useful with port 0).
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics
    }

    /// Stops every control thread and removes the socket file.
    pub fn stop(mut self) {
        if let Some(c) = self.checks.lock().unwrap_or_else(|p| p.into_inner()).take() {
            c.stop();
        }
        self.stop.store(true, Ordering::Release);
        // Wake the blocking accepts with a connection of our own.
        let _ = UnixStream::connect(&self.socket);
        if let Some(a) = self.metrics {
            let _ = TcpStream::connect(a);
        }
        for t in &self.threads {
            t.thread().unpark();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// Replaces the running health checks by `checks`.
fn restart_checks(current: &Checks, checks: &[HealthCheck], state: &Arc<Mutex<ControlState>>) {
    let mut slot = current.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(old) = slot.take() {
        old.stop();
    }
    *slot = Some(start_checks(checks, state));
}

/// Starts `checks` on the dests the model has now.
fn start_checks(checks: &[HealthCheck], state: &Arc<Mutex<ControlState>>) -> Checker {
    let targets = lock(state).health_targets(checks);
    Checker::start(targets, state.clone())
}

/// Admits a new connection: its peer's uid, the connection rate, then a slot.
fn admit(
    conn: &UnixStream,
    owner: u32,
    rate: &mut TokenBucket,
    slots: &Slots,
    limits: &Limits,
) -> Result<Arc<Slot>, Refusal> {
    let peer = Peer::of(conn).map_err(Refusal::Credentials)?;
    access::authorize(&peer, owner)?;
    let now = Instant::now();
    if !rate.take(now) {
        return Err(Refusal::ConnectionRate {
            per_sec: limits.connections_per_sec,
            burst: limits.connection_burst,
        });
    }
    slots.admit(conn, now)
}

/// Tells a connection why it is not served, and closes it.
fn refuse(mut conn: UnixStream, refusal: &Refusal) {
    match refusal {
        Refusal::Denied { uid, pid, .. } => {
            warn!(
                uid,
                pid, "control client refused: only root and rvsd's uid may connect"
            );
        }
        Refusal::Credentials(e) => warn!(error = %e, "control client refused: no credentials"),
        other => debug!(reason = %other, "control client turned away"),
    }
    // A new connection's send buffer is empty: this small answer does not block.
    let _ = conn.set_write_timeout(Some(Duration::from_millis(100)));
    let _ = proto::write_frame(&mut conn, &refusal.response());
}

/// Serves one control client until it hangs up, misses a request deadline, sends something
/// unreadable, or is evicted to make room for another.
fn serve_client(
    mut conn: UnixStream,
    slot: &Slot,
    limits: &Limits,
    state: &Arc<Mutex<ControlState>>,
    checks: &Checks,
) {
    let _ = conn.set_write_timeout(Some(limits.write));
    let mut rate = TokenBucket::new(
        limits.requests_per_sec,
        limits.request_burst,
        Instant::now(),
    );
    let mut wait = limits.first_request;
    loop {
        let mut reader = DeadlineReader::new(&conn, Instant::now() + wait);
        let read = proto::read_frame_bytes(&mut reader);
        let received = reader.received();
        if !slot.start_work() {
            let evicted = Refusal::Evicted {
                clients: limits.max_clients,
            };
            let _ = proto::write_frame(&mut conn, &evicted.response());
            return;
        }
        let body = match read {
            Ok(b) => b,
            Err(FrameError::Io(e)) if access::is_timeout(&e) => {
                let late = Refusal::Timeout {
                    limit: wait,
                    received,
                };
                debug!(reason = %late, "control client closed");
                let _ = proto::write_frame(&mut conn, &late.response());
                return;
            }
            // Hung up, possibly in the middle of a request: nothing to answer, nothing done.
            Err(FrameError::Io(_)) => return,
            // Over MAX_FRAME: refused unread; the stream is out of step, so it ends here.
            Err(e) => {
                let _ = proto::write_frame(
                    &mut conn,
                    &Response::Error {
                        kind: ErrorKind::BadRequest,
                        message: e.to_string(),
                    },
                );
                return;
            }
        };
        let response = if !rate.take(Instant::now()) {
            Refusal::RequestRate {
                per_sec: limits.requests_per_sec,
                burst: limits.request_burst,
            }
            .response()
        } else {
            answer(&body, state, checks)
        };
        if send(&mut conn, &response).is_err() {
            return;
        }
        slot.finish_work(Instant::now());
        wait = limits.next_request;
    }
}

/// Sends `response`; one too large for a frame is replaced by an error answer that says so
/// ([`too_large`]), never dropped with the connection.
fn send(conn: &mut UnixStream, response: &Response) -> Result<(), FrameError> {
    let body = match proto::encode(response) {
        Err(FrameError::TooLarge(size)) => {
            let what = answer_name(response);
            warn!(
                size,
                limit = MAX_FRAME,
                what,
                "reply too large for one message"
            );
            proto::encode(&too_large(size, what))?
        }
        other => other?,
    };
    proto::write_body(conn, &body)
}

/// The error answer sent instead of a reply of `size` bytes (over [`MAX_FRAME`]) to a request
/// for `what`.
pub fn too_large(size: usize, what: &str) -> Response {
    Response::Error {
        kind: ErrorKind::Internal,
        message: format!(
            "reply of {size} bytes is over the {} MiB limit of one message: the {what} \
             listing is too large to send",
            MAX_FRAME >> 20
        ),
    }
}

/// What a response lists, for messages.
fn answer_name(response: &Response) -> &'static str {
    match response {
        Response::Done | Response::Noted { .. } => "done",
        Response::Error { .. } => "error",
        Response::Services { .. } => "services (-L)",
        Response::Connections { .. } => "connections (-L -c)",
        Response::Timeouts { .. } => "timeouts (-L --timeout)",
        Response::Workers { .. } => "workers (--workers)",
        Response::Lips { .. } => "LIPs (--lips)",
        Response::Health { .. } => "health checks (--health)",
        Response::Daemons { .. } => "sync daemons (-L --daemon)",
        Response::Addresses { .. } => "managed addresses (--addresses)",
        Response::Cluster { .. } => "the cluster view (--cluster)",
        Response::Ports { .. } => "ports (--ports)",
    }
}

/// Decodes and answers one request body.
fn answer(body: &[u8], state: &Arc<Mutex<ControlState>>, checks: &Checks) -> Response {
    match proto::decode_request(body) {
        // Waits for the workers: done without holding the model.
        Ok(Request::Connections { from }) => {
            let (boxes, workers) = {
                let st = lock(state);
                (st.mailboxes(), st.worker_stats())
            };
            views::connections(&boxes, &workers, from)
        }
        Ok(req) => {
            let (response, reloaded) = {
                let mut st = lock(state);
                let r = st.handle(req);
                (r, st.take_pending_checks())
            };
            if let Some(new) = reloaded {
                restart_checks(checks, &new, state);
            }
            response
        }
        Err(e) => Response::Error {
            kind: ErrorKind::BadRequest,
            message: e.to_string(),
        },
    }
}
