//! HTTP and HTTPS probes (keepalived's HTTP_GET and SSL_GET): one `GET` over HTTP/1.0, the
//! answer's status checked against a [`StatusSet`], and optionally the MD5 of its body
//! (keepalived's `digest`, as its `genhash` prints it).
//!
//! The whole probe — connect, TLS handshake, request, answer — fits in the check's timeout.
//! Without a digest only the status line is read; with one, the whole body (up to
//! [`MAX_BODY`] bytes) until the server closes (an HTTP/1.0 request with `Connection: close`
//! gets neither chunks nor a kept-alive connection).

use super::tls::Tls;
use md5::{Digest, Md5};
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, StreamOwned};
use std::fmt;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

/// The largest answer (head and body) a digest check reads.
pub const MAX_BODY: usize = 1 << 20;

/// An HTTP or HTTPS check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpCheck {
    /// Request path (`/` by default); starts with `/`.
    pub path: String,
    /// The statuses that pass (by default any 2xx, as keepalived's `status_code`).
    pub expect: StatusSet,
    /// The `Host` header and, over TLS, the SNI name (keepalived's `virtualhost`). None: the
    /// probed address and port as `Host`, and no SNI.
    pub virtualhost: Option<String>,
    /// The MD5 the body must have (keepalived's `digest`).
    pub digest: Option<[u8; 16]>,
    /// TLS (an HTTPS check), or plain HTTP.
    pub tls: Option<Tls>,
}

/// Which HTTP statuses pass: single codes and inclusive ranges, e.g. `200-299,301`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusSet(Vec<RangeInclusive<u16>>);

/// Why a status list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatusError {
    /// Nothing listed.
    #[error("expect lists no status")]
    Empty,
    /// An item that is neither a code nor a range of codes.
    #[error("expect '{0}' is not a status code (100..=599) or a range of them like 200-299")]
    Bad(String),
    /// A range whose start is above its end.
    #[error("expect range '{0}' ends below its start")]
    Reversed(String),
}

impl StatusSet {
    /// Any 2xx: keepalived's default.
    pub fn success() -> StatusSet {
        StatusSet(vec![200..=299])
    }

    /// Parses comma-separated codes and ranges: `200`, `200-299`, `200-299,301, 302`.
    ///
    /// # Errors
    /// An empty list, a code outside 100..=599, a reversed range.
    pub fn parse(text: &str) -> Result<StatusSet, StatusError> {
        let mut set = StatusSet(Vec::new());
        for item in text.split(',') {
            set.add(item)?;
        }
        Ok(set)
    }

    /// Adds one item, a code or a range (`301`, `200-299`).
    ///
    /// # Errors
    /// As [`StatusSet::parse`].
    pub fn add(&mut self, item: &str) -> Result<(), StatusError> {
        let item = item.trim();
        if item.is_empty() {
            return Err(StatusError::Empty);
        }
        let code = |s: &str| {
            s.trim()
                .parse::<u16>()
                .ok()
                .filter(|c| (100..=599).contains(c))
                .ok_or_else(|| StatusError::Bad(item.to_string()))
        };
        let range = match item.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (code(a)?, code(b)?);
                if a > b {
                    return Err(StatusError::Reversed(item.to_string()));
                }
                a..=b
            }
            None => {
                let c = code(item)?;
                c..=c
            }
        };
        self.0.push(range);
        Ok(())
    }

    /// True if `status` passes.
    pub fn contains(&self, status: u16) -> bool {
        self.0.iter().any(|r| r.contains(&status))
    }

    /// Whether anything is listed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// As written in the configuration: `200-299,301`.
impl fmt::Display for StatusSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if r.start() == r.end() {
                write!(f, "{}", r.start())?;
            } else {
                write!(f, "{}-{}", r.start(), r.end())?;
            }
        }
        Ok(())
    }
}

/// Parses a `digest`: 32 hex digits, as `md5sum` and keepalived's `genhash` print them.
pub fn parse_digest(text: &str) -> Option<[u8; 16]> {
    let text = text.trim();
    if text.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A digest in lower-case hex.
pub fn hex(d: &[u8; 16]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// The host part of a `virtualhost` (without a `:port` or an IPv6 address's brackets): the
/// name TLS sends as SNI and checks a certificate against.
pub fn sni_host(virtualhost: &str) -> &str {
    let v = virtualhost.trim();
    if let Some(rest) = v.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match v.rsplit_once(':') {
        // One colon: host:port. More: a bare IPv6 address.
        Some((host, port)) if !host.contains(':') && port.parse::<u16>().is_ok() => host,
        _ => v,
    }
}

/// The TLS server name for a probe of `addr`: the virtualhost's host, else the address
/// (rustls sends no SNI for an address).
pub fn server_name(
    virtualhost: Option<&str>,
    addr: SocketAddr,
) -> Result<ServerName<'static>, String> {
    match virtualhost {
        Some(v) => ServerName::try_from(sni_host(v).to_string())
            .map_err(|_| format!("virtualhost '{v}' is not a DNS name or an address")),
        None => Ok(ServerName::from(addr.ip())),
    }
}

/// A stream with its TCP socket, whose timeouts follow the probe's deadline.
trait Timed: Read + Write {
    fn socket(&self) -> &TcpStream;
}

impl Timed for TcpStream {
    fn socket(&self) -> &TcpStream {
        self
    }
}

impl Timed for StreamOwned<ClientConnection, TcpStream> {
    fn socket(&self) -> &TcpStream {
        &self.sock
    }
}

/// The time left before `deadline`, or a timeout error naming `what`.
fn left(deadline: Instant, what: &str) -> Result<Duration, String> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{what}: timed out"))
}

/// Runs the check against `addr` within `timeout`.
///
/// # Errors
/// Why the dest failed it, for the log.
pub fn probe(h: &HttpCheck, addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let tcp =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("TCP connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let host = h.virtualhost.clone().unwrap_or_else(|| addr.to_string());
    // One write (one segment): `write!` on the stream would send each piece apart.
    let request = format!(
        "GET {} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: rvs-health\r\nConnection: close\r\n\r\n",
        h.path
    );
    let whole = h.digest.is_some();
    let answer = match &h.tls {
        None => {
            let mut s = tcp;
            exchange(&mut s, request.as_bytes(), whole, deadline)?
        }
        Some(tls) => {
            let name = server_name(h.virtualhost.as_deref(), addr)?;
            let conn =
                ClientConnection::new(tls.config(), name).map_err(|e| format!("TLS: {e}"))?;
            let mut s = StreamOwned::new(conn, tcp);
            while s.conn.is_handshaking() {
                let wait = left(deadline, "TLS handshake")?;
                let _ = s.sock.set_read_timeout(Some(wait));
                let _ = s.sock.set_write_timeout(Some(wait));
                s.conn
                    .complete_io(&mut s.sock)
                    .map_err(|e| format!("TLS handshake: {}", io_reason(&e)))?;
            }
            exchange(&mut s, request.as_bytes(), whole, deadline)?
        }
    };
    verdict(h, &answer)
}

/// An I/O error in words, a timeout said as such.
fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => "timed out".into(),
        ErrorKind::UnexpectedEof => "the server closed the connection".into(),
        _ => e.to_string(),
    }
}

/// Sends `request` and reads the answer: its status line, or all of it when `whole`.
fn exchange(
    s: &mut impl Timed,
    request: &[u8],
    whole: bool,
    deadline: Instant,
) -> Result<Vec<u8>, String> {
    let _ = s
        .socket()
        .set_write_timeout(Some(left(deadline, "HTTP request")?));
    s.write_all(request)
        .and_then(|()| s.flush())
        .map_err(|e| format!("HTTP request: {}", io_reason(&e)))?;
    let mut answer = Vec::with_capacity(if whole { 4096 } else { 256 });
    let mut buf = [0u8; 4096];
    loop {
        if !whole && answer.windows(2).any(|w| w == b"\r\n") {
            break;
        }
        let _ = s
            .socket()
            .set_read_timeout(Some(left(deadline, "HTTP response")?));
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            // A TLS server that closes without close_notify: the end, as over plain TCP.
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("HTTP response: {}", io_reason(&e))),
        }
        if answer.len() > MAX_BODY {
            return Err(format!(
                "HTTP response: longer than {MAX_BODY} bytes (digest checks read it whole)"
            ));
        }
    }
    Ok(answer)
}

/// The answer against the check: its status, then its body's digest.
fn verdict(h: &HttpCheck, answer: &[u8]) -> Result<(), String> {
    let line_end = answer
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(answer.len().min(64));
    let line = String::from_utf8_lossy(&answer[..line_end]);
    let status = line
        .strip_prefix("HTTP/1.")
        .and_then(|r| r.get(2..5))
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| format!("HTTP response: not a status line: {line:?}"))?;
    if !h.expect.contains(status) {
        return Err(format!("HTTP status {status}, expected {}", h.expect));
    }
    if let Some(want) = &h.digest {
        let body = answer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|p| &answer[p + 4..])
            .ok_or("HTTP response: no end of header")?;
        let got: [u8; 16] = Md5::digest(body).into();
        if got != *want {
            return Err(format!(
                "body MD5 {}, expected {} ({} bytes)",
                hex(&got),
                hex(want),
                body.len()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_sets_take_codes_and_ranges() {
        let s = StatusSet::parse("200-299, 301").unwrap();
        assert!(s.contains(200) && s.contains(299) && s.contains(301));
        assert!(!s.contains(300) && !s.contains(302) && !s.contains(404));
        assert_eq!(s.to_string(), "200-299,301");
        assert_eq!(StatusSet::success().to_string(), "200-299");
        assert_eq!(StatusSet::parse("404").unwrap().to_string(), "404");
        for (bad, e) in [
            ("", StatusError::Empty),
            ("200,", StatusError::Empty),
            ("2xx", StatusError::Bad("2xx".into())),
            ("99", StatusError::Bad("99".into())),
            ("600", StatusError::Bad("600".into())),
            ("200-", StatusError::Bad("200-".into())),
            ("299-200", StatusError::Reversed("299-200".into())),
        ] {
            assert_eq!(StatusSet::parse(bad), Err(e), "{bad:?}");
        }
    }

    #[test]
    fn digests_and_sni_names() {
        let d = parse_digest("9E107D9D372BB6826BD81D3542A419D6").unwrap();
        assert_eq!(hex(&d), "9e107d9d372bb6826bd81d3542a419d6");
        assert_eq!(parse_digest("9e107d9d372bb6826bd81d3542a419d"), None);
        assert_eq!(parse_digest("zz107d9d372bb6826bd81d3542a419d6"), None);
        assert_eq!(sni_host("www.example.com"), "www.example.com");
        assert_eq!(sni_host("www.example.com:8443"), "www.example.com");
        assert_eq!(sni_host("[2001:db8::1]:443"), "2001:db8::1");
        assert_eq!(sni_host("2001:db8::1"), "2001:db8::1");
        let a: SocketAddr = "10.1.0.11:443".parse().unwrap();
        assert_eq!(
            server_name(None, a).unwrap(),
            ServerName::from(a.ip()),
            "no virtualhost: the address (no SNI)"
        );
        assert!(server_name(Some("bad name!"), a).is_err());
    }

    fn check(expect: &str, digest: Option<&str>) -> HttpCheck {
        HttpCheck {
            path: "/".into(),
            expect: StatusSet::parse(expect).unwrap(),
            virtualhost: None,
            digest: digest.map(|d| parse_digest(d).unwrap()),
            tls: None,
        }
    }

    #[test]
    fn verdicts_read_the_status_and_the_body() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
        // md5("abc")
        let abc = "900150983cd24fb0d6963f7d28e17f72";
        assert_eq!(verdict(&check("200", None), ok), Ok(()));
        assert_eq!(verdict(&check("200", Some(abc)), ok), Ok(()));
        let e = verdict(&check("200", Some("00000000000000000000000000000000")), ok).unwrap_err();
        assert_eq!(
            e,
            "body MD5 900150983cd24fb0d6963f7d28e17f72, expected 00000000000000000000000000000000 (3 bytes)"
        );
        assert_eq!(
            verdict(&check("200-299,301", None), b"HTTP/1.0 404 Not Found\r\n").unwrap_err(),
            "HTTP status 404, expected 200-299,301"
        );
        assert!(verdict(&check("200", None), b"SSH-2.0-OpenSSH\r\n")
            .unwrap_err()
            .starts_with("HTTP response: not a status line"));
        assert!(verdict(&check("200", None), b"").is_err());
    }
}
