//! Who may use rvsd's control socket, and how much.
//!
//! - **The socket file** is bound inside a private (0700) staging directory, set to 0600 there
//!   and only then renamed to its path, so it is never reachable with a wider mode whatever
//!   the umask ([`bind_socket`]). Its directory may not be world-writable without the sticky
//!   bit: anyone could replace the socket there and answer rvsadm in rvsd's place.
//! - **Peer credentials**: the kernel records the connecting process's uid and pid
//!   (`SO_PEERCRED`, unix(7)); only root and the uid rvsd runs as are served ([`authorize`]),
//!   as only root may use ipvsadm. The file mode already keeps others out; this check still
//!   holds if the mode is widened or the socket is handed over.
//! - **Rates**: a [`TokenBucket`] for new connections (rvsadm makes one per invocation) and
//!   one per connection for its requests.
//! - **Slots**: at most [`Limits::max_clients`] connections are served at once. When all are
//!   taken, the client that has waited longest for its own next request is closed to make room
//!   (told so with a `Busy` answer); if every client is busy with a request, the newcomer gets
//!   the `Busy` answer instead ([`Slots`]).
//! - **Deadlines**: a whole request must arrive within [`Limits::first_request`] of
//!   connecting, and within [`Limits::next_request`] of the previous answer — a total time,
//!   not a per-read timeout, so a client trickling bytes cannot hold a slot either.
//!
//! Every refusal is a [`Response::Error`] saying what happened; none changes the model. The
//! `Busy` ones can be sent again as they are, which rvsadm does for a few seconds.

use proto::{ErrorKind, Response};
use std::io::{self, Read};
use std::net::Shutdown;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Clients served at once.
pub const MAX_CLIENTS: usize = 16;
/// How long a new connection has to deliver its first whole request.
pub const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a connection has to deliver each further whole request, from the previous answer.
pub const NEXT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long writing one answer may block.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// New connections per second, sustained (each rvsadm invocation is one).
pub const CONNECTIONS_PER_SEC: u32 = 1000;
/// New connections accepted at once above the sustained rate.
pub const CONNECTION_BURST: u32 = 1000;
/// Requests per second on one connection, sustained.
pub const REQUESTS_PER_SEC: u32 = 200;
/// Requests accepted at once on one connection above the sustained rate.
pub const REQUEST_BURST: u32 = 400;

/// The control server's limits (the defaults are the constants of this module).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Clients served at once.
    pub max_clients: usize,
    /// How long a new connection has to deliver its first whole request.
    pub first_request: Duration,
    /// How long a connection has to deliver each further whole request, from the previous
    /// answer.
    pub next_request: Duration,
    /// How long writing one answer may block.
    pub write: Duration,
    /// New connections per second, sustained.
    pub connections_per_sec: u32,
    /// New connections accepted at once above the sustained rate.
    pub connection_burst: u32,
    /// Requests per second on one connection, sustained.
    pub requests_per_sec: u32,
    /// Requests accepted at once on one connection above the sustained rate.
    pub request_burst: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_clients: MAX_CLIENTS,
            first_request: FIRST_REQUEST_TIMEOUT,
            next_request: NEXT_REQUEST_TIMEOUT,
            write: WRITE_TIMEOUT,
            connections_per_sec: CONNECTIONS_PER_SEC,
            connection_burst: CONNECTION_BURST,
            requests_per_sec: REQUESTS_PER_SEC,
            request_burst: REQUEST_BURST,
        }
    }
}

/// Why a client or one of its requests was turned away. Nothing changed in either case.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The peer runs as a uid that may not use the socket.
    #[error(
        "permission denied: uid {uid} (pid {pid}) may not use rvsd's control socket (only {})",
        allowed(*owner)
    )]
    Denied {
        /// The peer's uid.
        uid: u32,
        /// The peer's pid.
        pid: i32,
        /// The uid rvsd runs as.
        owner: u32,
    },
    /// The kernel did not say who the peer is.
    #[error("permission denied: cannot read the client's credentials: {0}")]
    Credentials(io::Error),
    /// Too many new connections in a short time.
    #[error(
        "rvsd is busy: more than {per_sec} new control connections per second \
         (burst {burst}); nothing was done, try again"
    )]
    ConnectionRate {
        /// The sustained rate.
        per_sec: u32,
        /// The burst.
        burst: u32,
    },
    /// Too many requests on this connection in a short time.
    #[error(
        "rvsd is busy: more than {per_sec} requests per second on one connection \
         (burst {burst}); this one was not applied, try again"
    )]
    RequestRate {
        /// The sustained rate.
        per_sec: u32,
        /// The burst.
        burst: u32,
    },
    /// Every slot is serving a request.
    #[error("rvsd is busy serving {clients} clients: nothing was done, try again")]
    Full {
        /// The number of slots.
        clients: usize,
    },
    /// This connection was idle when another client needed its slot.
    #[error(
        "rvsd closed this idle connection to serve another client (all {clients} slots were \
         taken); nothing was done, try again"
    )]
    Evicted {
        /// The number of slots.
        clients: usize,
    },
    /// The request did not arrive whole in time.
    #[error("no complete request within {limit:?} ({received} bytes received): closing")]
    Timeout {
        /// The deadline.
        limit: Duration,
        /// Bytes of the request that did arrive.
        received: usize,
    },
    /// rvsd could not take the connection on.
    #[error("rvsd cannot serve this connection: {0}")]
    Io(io::Error),
}

fn allowed(owner: u32) -> String {
    if owner == 0 {
        "root may".to_string()
    } else {
        format!("root and uid {owner} may")
    }
}

impl Refusal {
    /// The error class of the answer.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Refusal::Denied { .. } | Refusal::Credentials(_) => ErrorKind::Denied,
            Refusal::ConnectionRate { .. }
            | Refusal::RequestRate { .. }
            | Refusal::Full { .. }
            | Refusal::Evicted { .. } => ErrorKind::Busy,
            Refusal::Timeout { .. } => ErrorKind::BadRequest,
            Refusal::Io(_) => ErrorKind::Internal,
        }
    }

    /// The answer telling the client.
    pub fn response(&self) -> Response {
        Response::Error {
            kind: self.kind(),
            message: self.to_string(),
        }
    }
}

/// A connected peer as the kernel recorded it when it called `connect`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Effective uid.
    pub uid: u32,
    /// Effective gid.
    pub gid: u32,
    /// Process id.
    pub pid: i32,
}

impl Peer {
    /// The credentials of `conn`'s peer (`SO_PEERCRED`).
    ///
    /// # Errors
    /// The `getsockopt` error.
    pub fn of(conn: &UnixStream) -> io::Result<Peer> {
        let cred = rustix::net::sockopt::socket_peercred(conn)?;
        Ok(Peer {
            uid: cred.uid.as_raw(),
            gid: cred.gid.as_raw(),
            pid: cred.pid.as_raw_nonzero().get(),
        })
    }
}

/// Whether `peer` may use the socket of an rvsd running as uid `owner`: root and `owner` may.
///
/// # Errors
/// [`Refusal::Denied`] for anyone else.
pub fn authorize(peer: &Peer, owner: u32) -> Result<(), Refusal> {
    if peer.uid == 0 || peer.uid == owner {
        Ok(())
    } else {
        Err(Refusal::Denied {
            uid: peer.uid,
            pid: peer.pid,
            owner,
        })
    }
}

/// A token bucket on a caller's clock: `burst` tokens at most, refilled at `per_sec`.
#[derive(Clone, Copy, Debug)]
pub struct TokenBucket {
    per_sec: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket (a burst of at least one).
    pub fn new(per_sec: u32, burst: u32, now: Instant) -> TokenBucket {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            per_sec: f64::from(per_sec),
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Takes a token at `now` if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Binds the control socket at `path` with mode 0600 and no moment with a wider one: the socket
/// is bound in a 0700 staging directory beside `path`, set to 0600 there, then renamed into
/// place. The directory of `path` is created (0755) if missing.
///
/// # Errors
/// A directory writable by everyone without the sticky bit; `path` being something else than
/// a socket, or a socket another rvsd answers on; filesystem and socket errors.
pub fn bind_socket(path: &Path) -> io::Result<UnixListener> {
    StagedSocket::bind(path)?.publish()
}

/// A socket bound in its private staging directory, not yet at its path.
pub(crate) struct StagedSocket {
    listener: Option<UnixListener>,
    dir: PathBuf,
    socket: PathBuf,
    target: PathBuf,
}

impl StagedSocket {
    /// Checks `target`'s directory and what is at `target`, then binds in a 0700 staging
    /// directory with mode 0600.
    pub(crate) fn bind(target: &Path) -> io::Result<StagedSocket> {
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)?;
        check_directory(parent)?;
        match std::fs::symlink_metadata(target) {
            Ok(m) if m.file_type().is_socket() => {
                if UnixStream::connect(target).is_ok() {
                    return Err(io::Error::new(
                        io::ErrorKind::AddrInUse,
                        format!("another rvsd answers on {}", target.display()),
                    ));
                }
                // A stale socket: the rename below replaces it.
            }
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "{} exists and is not a socket: remove it or choose another socket path",
                        target.display()
                    ),
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let name = target.file_name().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} does not name a file", target.display()),
            )
        })?;
        let mut staging = std::ffi::OsString::from(".");
        staging.push(name);
        staging.push(format!(".staging-{}", std::process::id()));
        let dir = parent.join(staging);
        // Left over by an earlier rvsd with this pid: not followed if it is a symlink.
        if std::fs::symlink_metadata(&dir).is_ok() {
            std::fs::remove_dir_all(&dir).or_else(|_| std::fs::remove_file(&dir))?;
        }
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        let mut staged = StagedSocket {
            listener: None,
            socket: dir.join("sock"),
            dir,
            target: target.to_path_buf(),
        };
        let listener = UnixListener::bind(&staged.socket)?;
        std::fs::set_permissions(&staged.socket, std::fs::Permissions::from_mode(0o600))?;
        staged.listener = Some(listener);
        Ok(staged)
    }

    /// The staging directory.
    #[cfg(test)]
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The socket's path inside the staging directory.
    #[cfg(test)]
    pub(crate) fn socket(&self) -> &Path {
        &self.socket
    }

    /// Renames the socket to its path and removes the staging directory.
    pub(crate) fn publish(mut self) -> io::Result<UnixListener> {
        std::fs::rename(&self.socket, &self.target)?;
        let _ = std::fs::remove_dir(&self.dir);
        self.listener
            .take()
            .ok_or_else(|| io::Error::other("socket already published"))
    }
}

impl Drop for StagedSocket {
    fn drop(&mut self) {
        if self.listener.is_some() {
            let _ = std::fs::remove_file(&self.socket);
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Refuses a directory anyone may write without the sticky bit (anyone could replace the
/// socket there).
fn check_directory(dir: &Path) -> io::Result<()> {
    let mode = std::fs::metadata(dir)?.mode();
    if mode & 0o002 != 0 && mode & 0o1000 == 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is writable by every user and has no sticky bit: anyone could replace \
                 rvsd's control socket there (chmod o-w or +t it, or use a directory like /run/rvs)",
                dir.display()
            ),
        ));
    }
    Ok(())
}

/// What a client's thread is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SlotState {
    /// Waiting for the client's next request since then.
    Waiting(Instant),
    /// Handling a request or writing its answer.
    Working,
    /// Closed to make room; the thread is leaving.
    Evicted,
}

/// One served connection.
pub(crate) struct Slot {
    /// A handle on the client's socket, to wake its thread when evicted.
    conn: UnixStream,
    state: Mutex<SlotState>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Slot {
    /// Called with a request read (or a read failed): false if the slot was evicted
    /// meanwhile, and the request must then be dropped unanswered but for the eviction notice.
    pub(crate) fn start_work(&self) -> bool {
        let mut s = lock(&self.state);
        if *s == SlotState::Evicted {
            return false;
        }
        *s = SlotState::Working;
        true
    }

    /// The answer is written: waiting for the next request from `now`.
    pub(crate) fn finish_work(&self, now: Instant) {
        let mut s = lock(&self.state);
        if *s == SlotState::Working {
            *s = SlotState::Waiting(now);
        }
    }

    fn waiting_since(&self) -> Option<Instant> {
        match *lock(&self.state) {
            SlotState::Waiting(t) => Some(t),
            _ => None,
        }
    }

    fn is_evicted(&self) -> bool {
        *lock(&self.state) == SlotState::Evicted
    }

    /// Evicts the slot if it is waiting for a request: its blocked read returns at once.
    fn evict(&self) -> bool {
        let mut s = lock(&self.state);
        if !matches!(*s, SlotState::Waiting(_)) {
            return false;
        }
        *s = SlotState::Evicted;
        let _ = self.conn.shutdown(Shutdown::Read);
        true
    }
}

/// The connections being served.
pub(crate) struct Slots {
    max: usize,
    list: Mutex<Vec<Arc<Slot>>>,
}

impl Slots {
    /// Room for `max` clients (at least one).
    pub(crate) fn new(max: usize) -> Slots {
        Slots {
            max: max.max(1),
            list: Mutex::new(Vec::new()),
        }
    }

    /// Takes a slot for `conn`. With every slot taken, the client waiting longest for its
    /// own next request is evicted to make room.
    ///
    /// # Errors
    /// [`Refusal::Full`] when every client is in the middle of a request; [`Refusal::Io`] if
    /// the socket cannot be duplicated.
    pub(crate) fn admit(&self, conn: &UnixStream, now: Instant) -> Result<Arc<Slot>, Refusal> {
        let mut list = lock(&self.list);
        let live = list.iter().filter(|s| !s.is_evicted()).count();
        if live >= self.max {
            let mut waiting: Vec<(Instant, &Arc<Slot>)> = list
                .iter()
                .filter_map(|s| s.waiting_since().map(|t| (t, s)))
                .collect();
            waiting.sort_by_key(|(t, _)| *t);
            if !waiting.iter().any(|(_, s)| s.evict()) {
                return Err(Refusal::Full { clients: self.max });
            }
        }
        let slot = Arc::new(Slot {
            conn: conn.try_clone().map_err(Refusal::Io)?,
            state: Mutex::new(SlotState::Waiting(now)),
        });
        list.push(slot.clone());
        Ok(slot)
    }

    /// Gives `slot` back.
    pub(crate) fn leave(&self, slot: &Arc<Slot>) {
        lock(&self.list).retain(|s| !Arc::ptr_eq(s, slot));
    }

    /// Clients being served (evicted ones not counted).
    pub(crate) fn live(&self) -> usize {
        lock(&self.list).iter().filter(|s| !s.is_evicted()).count()
    }
}

/// Reads from a connection until a deadline: each read waits at most for what is left.
pub(crate) struct DeadlineReader<'a> {
    conn: &'a UnixStream,
    at: Instant,
    received: usize,
}

impl<'a> DeadlineReader<'a> {
    /// Reads from `conn` until `at`.
    pub(crate) fn new(conn: &'a UnixStream, at: Instant) -> DeadlineReader<'a> {
        DeadlineReader {
            conn,
            at,
            received: 0,
        }
    }

    /// Bytes read so far.
    pub(crate) fn received(&self) -> usize {
        self.received
    }
}

impl Read for DeadlineReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.at.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.conn.set_read_timeout(Some(left))?;
        let mut conn = self.conn;
        let n = conn.read(buf)?;
        self.received += n;
        Ok(n)
    }
}

/// Whether a read error is a timeout (a socket timeout is `WouldBlock` on Unix).
pub(crate) fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn bucket_allows_the_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, 4, t0);
        assert_eq!((0..6).filter(|_| b.take(t0)).count(), 4, "the burst");
        assert!(!b.take(t0 + Duration::from_millis(50)), "half a token");
        assert!(
            b.take(t0 + Duration::from_millis(100)),
            "one token per 100 ms"
        );
        assert!(!b.take(t0 + Duration::from_millis(100)));
        // A long pause refills to the burst, not beyond.
        let later = t0 + Duration::from_secs(60);
        assert_eq!((0..10).filter(|_| b.take(later)).count(), 4);
        // A clock going backwards takes nothing and gives nothing.
        assert!(!b.take(t0));
    }

    #[test]
    fn only_root_and_the_owner_are_authorized() {
        let peer = |uid| Peer {
            uid,
            gid: uid,
            pid: 42,
        };
        assert!(authorize(&peer(0), 1000).is_ok());
        assert!(authorize(&peer(1000), 1000).is_ok());
        let e = authorize(&peer(65534), 1000).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Denied);
        assert_eq!(
            e.to_string(),
            "permission denied: uid 65534 (pid 42) may not use rvsd's control socket \
             (only root and uid 1000 may)"
        );
        let e = authorize(&peer(1000), 0).unwrap_err();
        assert!(e.to_string().ends_with("(only root may)"), "{e}");
    }

    #[test]
    fn peer_credentials_come_from_the_kernel() {
        let (a, b) = UnixStream::pair().unwrap();
        let me = std::fs::metadata("/proc/self").unwrap();
        let peer = Peer::of(&a).unwrap();
        assert_eq!(
            (peer.uid, peer.gid, peer.pid),
            (me.uid(), me.gid(), std::process::id() as i32)
        );
        assert_eq!(Peer::of(&b).unwrap(), peer);
    }

    #[test]
    fn socket_is_staged_privately_then_published_0600() {
        let dir = std::env::temp_dir().join(format!("rvs-access-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let target = dir.join("run").join("rvsd.sock");
        let staged = StagedSocket::bind(&target).unwrap();
        let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().mode() & 0o7777;
        assert_eq!(mode(staged.dir()), 0o700, "only rvsd's uid can reach it");
        assert_eq!(mode(staged.socket()), 0o600);
        assert!(!target.exists(), "not at its path before it is 0600");
        let staging = staged.dir().to_path_buf();
        let listener = staged.publish().unwrap();
        assert_eq!(mode(&target), 0o600);
        assert!(!staging.exists(), "staging directory removed");
        // It is the bound socket that moved.
        let mut c = UnixStream::connect(&target).unwrap();
        c.write_all(b"x").unwrap();
        let (mut s, _) = listener.accept().unwrap();
        let mut got = [0u8; 1];
        s.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"x");
        // A live socket is not replaced; a stale one is.
        assert!(bind_socket(&target).is_err());
        drop((c, s, listener));
        let again = bind_socket(&target).unwrap();
        drop(again);
        // Something else than a socket is left alone.
        std::fs::remove_file(&target).unwrap();
        std::fs::write(&target, b"notes").unwrap();
        let e = bind_socket(&target).unwrap_err();
        assert!(e.to_string().contains("is not a socket"), "{e}");
        assert_eq!(std::fs::read(&target).unwrap(), b"notes");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn slots_evict_the_longest_waiting_client_and_refuse_when_all_work() {
        let t0 = Instant::now();
        let slots = Slots::new(2);
        let (c1, _p1) = UnixStream::pair().unwrap();
        let (c2, _p2) = UnixStream::pair().unwrap();
        let (c3, _p3) = UnixStream::pair().unwrap();
        let (c4, _p4) = UnixStream::pair().unwrap();
        let s1 = slots.admit(&c1, t0).unwrap();
        let s2 = slots.admit(&c2, t0 + Duration::from_millis(1)).unwrap();
        assert_eq!(slots.live(), 2);
        // Full: the one waiting longest (s1) makes room.
        let s3 = slots.admit(&c3, t0 + Duration::from_millis(2)).unwrap();
        assert!(s1.is_evicted() && !s2.is_evicted());
        assert_eq!(slots.live(), 2);
        assert!(!s1.start_work(), "an evicted thread drops its request");
        // Its socket is shut for reading: the thread's blocked read returns.
        let mut buf = [0u8; 1];
        assert_eq!((&c1).read(&mut buf).unwrap(), 0);
        slots.leave(&s1);
        // Both others at work: nobody to evict.
        assert!(s2.start_work() && s3.start_work());
        let e = slots
            .admit(&c4, t0 + Duration::from_millis(3))
            .err()
            .unwrap();
        assert_eq!(e.kind(), ErrorKind::Busy);
        // One finishes: it is now the one to go.
        s3.finish_work(t0 + Duration::from_millis(4));
        let _s4 = slots.admit(&c4, t0 + Duration::from_millis(5)).unwrap();
        assert!(s3.is_evicted() && !s2.is_evicted());
    }

    #[test]
    fn deadline_counts_the_whole_read_not_each_call() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let writer = std::thread::spawn(move || {
            // One byte every 20 ms: each read would succeed under a per-read timeout.
            for _ in 0..100 {
                if b.write_all(b"z").is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let started = Instant::now();
        let mut r = DeadlineReader::new(&a, started + Duration::from_millis(200));
        let mut buf = [0u8; 100];
        let e = r.read_exact(&mut buf).unwrap_err();
        assert!(is_timeout(&e), "{e}");
        assert!(r.received() > 0 && r.received() < 100, "{}", r.received());
        assert!(started.elapsed() < Duration::from_millis(1500));
        drop(a);
        writer.join().unwrap();
    }
}
