//! The systemd notify protocol (sd_notify(3)), for `Type=notify` units: one datagram per state
//! change to the socket named by `$NOTIFY_SOCKET` — a path, or an abstract name written with a
//! leading `@`. Without the variable (not started by systemd) nothing is sent.
//!
//! rvsd says `READY=1` once its ports are up and the control socket listens, `RELOADING=1`
//! then `READY=1` around a reload (SIGHUP), `STOPPING=1` when it starts to stop, and a
//! `STATUS=` line with each, which `systemctl status` shows.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use tracing::warn;

/// Where the service manager listens, taken from the environment once at start-up.
pub struct Notifier {
    target: Option<SocketAddr>,
}

impl Notifier {
    /// The notifier for `$NOTIFY_SOCKET`; an empty or unset variable sends nothing.
    pub fn from_env() -> Notifier {
        let target = std::env::var_os("NOTIFY_SOCKET").and_then(|s| {
            let s = s.to_string_lossy().into_owned();
            match socket_addr(&s) {
                Ok(a) => a,
                Err(e) => {
                    warn!("NOTIFY_SOCKET={s}: {e}; systemd will not hear from rvsd");
                    None
                }
            }
        });
        Notifier { target }
    }

    /// Sends `state` (newline-separated `KEY=VALUE` lines). A failure is logged, never fatal:
    /// the director works without its service manager.
    pub fn send(&self, state: &str) {
        let Some(addr) = &self.target else {
            return;
        };
        let sent = UnixDatagram::unbound().and_then(|s| s.send_to_addr(state.as_bytes(), addr));
        if let Err(e) = sent {
            warn!("cannot notify systemd ({state:?}): {e}");
        }
    }

    /// `READY=1` with a status line.
    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={status}"));
    }

    /// `RELOADING=1`: systemd holds the unit in "reloading" until the next `READY=1`.
    pub fn reloading(&self) {
        self.send("RELOADING=1\nSTATUS=reloading");
    }

    /// `STOPPING=1`.
    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=stopping");
    }
}

/// `$NOTIFY_SOCKET`'s address: `@name` is abstract, anything else a path; empty is none.
fn socket_addr(s: &str) -> io::Result<Option<SocketAddr>> {
    if s.is_empty() {
        return Ok(None);
    }
    match s.strip_prefix('@') {
        Some(name) => SocketAddr::from_abstract_name(name.as_bytes()).map(Some),
        None if s.starts_with('/') => SocketAddr::from_pathname(s).map(Some),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "neither a path nor an abstract name (@...)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn notify_socket_forms() {
        assert!(socket_addr("").unwrap().is_none());
        let a = socket_addr("@rvs-test").unwrap().unwrap();
        assert_eq!(a.as_abstract_name(), Some(&b"rvs-test"[..]));
        let p = socket_addr("/run/systemd/notify").unwrap().unwrap();
        assert_eq!(
            p.as_pathname(),
            Some(std::path::Path::new("/run/systemd/notify"))
        );
        assert!(socket_addr("relative").is_err());
    }

    #[test]
    fn states_reach_the_socket() {
        let name = format!("rvs-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&addr).unwrap();
        listener
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let n = Notifier { target: Some(addr) };
        let mut buf = [0u8; 256];
        n.ready("2 ports up");
        let got = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..got], b"READY=1\nSTATUS=2 ports up");
        n.reloading();
        let got = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..got], b"RELOADING=1\nSTATUS=reloading");
        n.stopping();
        let got = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..got], b"STOPPING=1\nSTATUS=stopping");
        // Nothing is sent, and nothing fails, without a socket.
        Notifier { target: None }.ready("x");
    }
}
