//! `rvsadm`: administer rvsd with ipvsadm's commands.
//!
//! Parses the command line ([`rvsadm::cli`]), sends one request to rvsd over its control
//! socket (`--socket PATH`, else `$RVS_SOCKET`, else `/run/rvs/rvsd.sock`), and prints the
//! answer ([`rvsadm::format`]). Exit statuses follow ipvsadm: 0 on success; 2 for a bad
//! command line and when rvsd cannot be reached (ipvsadm's "Can't initialize ipvs"); 255 (its
//! `-1`) for the "Try ..." hint, popt errors and a refused change; 1 when a listing fails.
//! Error messages go to stderr alone, as ipvsadm prints them.
//!
//! A uid rvsd does not serve gets exit status 2, as ipvsadm's "Permission denied (you must be
//! root)". A `busy` answer (rvsd at its client or rate limits; nothing was done) is retried
//! with a growing pause for up to [`BUSY_WAIT`] — like `iptables -w` waiting for its lock, so
//! that scripts running many rvsadm at once do not fail — then reported, with exit status 1.
//!
//! `-L -c` asks for the sessions page by page, each from where the previous one ended, and
//! prints each page as it comes ([`format::ConnectionsPrinter`]): a listing of any size takes
//! the memory of one page here and in rvsd. Sessions that start or end during the listing may
//! or may not be in it, as with `/proc/net/ip_vs_conn`; every other session is listed once.

use proto::{ConnCursor, Envelope, ErrorKind, FrameError, Request, Response};
use rvsadm::cli::{self, Invocation, Output};
use rvsadm::format;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// How long rvsd may take to answer before rvsadm gives up.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// How long rvsadm keeps retrying while rvsd answers that it is busy.
const BUSY_WAIT: Duration = Duration::from_secs(5);

/// How long after an answer the next page of `-L -c` is still asked on the same connection:
/// rvsd closes a connection that stays silent for 10 s after an answer, as it may while the
/// output waits on a pager; later pages go on a new connection.
const REUSE_FOR: Duration = Duration::from_secs(5);

/// Exit status of a refused change (ipvsadm returns -1 from `main`).
const EXIT_REFUSED: u8 = 255;
/// Exit status of a bad command line and of an unreachable rvsd (ipvsadm's `fail(2, ...)`).
const EXIT_USAGE: u8 = 2;
/// Exit status of a failed listing or a broken exchange (ipvsadm's `exit(1)`).
const EXIT_FAILED: u8 = 1;

/// Why talking to rvsd failed.
#[derive(Debug, thiserror::Error)]
enum ClientError {
    /// The socket could not be opened.
    #[error("rvsadm: cannot connect to rvsd at {path}: {source} (is rvsd running? try --socket)")]
    Connect {
        /// The socket path.
        path: String,
        /// Why.
        source: io::Error,
    },
    /// The exchange broke after connecting.
    #[error("rvsadm: talking to rvsd at {path}: {source}")]
    Exchange {
        /// The socket path.
        path: String,
        /// Why.
        source: FrameError,
    },
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    ExitCode::from(run(&args))
}

/// Runs one invocation and returns the exit status.
fn run(args: &[String]) -> u8 {
    let (socket, args) = match cli::split_socket(args) {
        Ok(split) => split,
        Err(e) => return cli_failure(&e),
    };
    let socket = socket
        .or_else(|| {
            std::env::var(cli::SOCKET_ENV)
                .ok()
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| cli::DEFAULT_SOCKET.to_owned());
    let invocation = match cli::parse(&args) {
        Ok(inv) => inv,
        Err(e) => return cli_failure(&e),
    };
    match invocation {
        Invocation::Help => print(&cli::usage()),
        Invocation::Version => print(&cli::version()),
        Invocation::Request {
            request: Request::Connections { from },
            output,
        } => list_connections(&socket, from, &output),
        Invocation::Request {
            request: request @ Request::Drain { .. },
            ..
        } => drain(&socket, request),
        Invocation::Request { request, output } => request_and_print(&socket, request, &output),
        Invocation::Save { .. } => save(&socket),
        Invocation::Restore => restore(&socket),
    }
}

/// Prints a command-line error as ipvsadm does, and its exit status.
fn cli_failure(e: &cli::CliError) -> u8 {
    eprintln!("{e}");
    if e.wants_hint() {
        eprintln!("{}", cli::CliError::NoCommand);
    }
    e.exit_code()
}

/// Writes `text` to stdout; a closed pipe (`rvsadm -L | head`) is not an error.
fn print(text: &str) -> u8 {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => 0,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            eprintln!("rvsadm: cannot write output: {e}");
            EXIT_FAILED
        }
    }
}

/// Whether `request` only reads (a failure then exits 1, as ipvsadm's listings do).
fn is_listing(request: &Request) -> bool {
    matches!(
        request,
        Request::List { .. }
            | Request::Connections { .. }
            | Request::Timeouts
            | Request::Workers
            | Request::Ports
            | Request::Lips
            | Request::Health
            | Request::Daemons
            | Request::Addresses
            | Request::Cluster
    )
}

/// Sends `request`, prints the answer.
fn request_and_print(socket: &str, request: Request, output: &Output) -> u8 {
    let failure = if is_listing(&request) {
        EXIT_FAILED
    } else {
        EXIT_REFUSED
    };
    let response = match exchange(socket, &request) {
        Ok(r) => r,
        Err(e) => return client_failure(&e),
    };
    if let Some(code) = access_failure(&response) {
        return code;
    }
    if let Response::Noted { note } = &response {
        eprintln!("rvsadm: note: {note}");
    }
    match format::render(&request, &response, output) {
        Ok(text) => print(&text),
        Err(e) => {
            eprintln!("{e}");
            failure
        }
    }
}

/// `--drain`: asks for the drain, then follows it (`--cluster` every 200 ms), printing each
/// new status, until rvsd has exited: 0 if it drained, 1 if the drain timed out or rvsd
/// could not be followed.
fn drain(socket: &str, request: Request) -> u8 {
    let response = match exchange(socket, &request) {
        Ok(r) => r,
        Err(e) => return client_failure(&e),
    };
    if let Some(code) = access_failure(&response) {
        return code;
    }
    if let Response::Error { message, .. } = &response {
        eprintln!("rvsadm: {message}");
        return EXIT_REFUSED;
    }
    let mut last = String::new();
    let mut timed_out = false;
    loop {
        std::thread::sleep(std::time::Duration::from_millis(200));
        match exchange(socket, &Request::Cluster) {
            Ok(Response::Cluster { cluster }) => {
                let drain = cluster.drain;
                if drain != last {
                    println!("{drain}");
                    timed_out = drain.starts_with("drain timed out");
                    last = drain;
                }
            }
            Ok(other) => {
                eprintln!("rvsadm: unexpected answer while draining: {other:?}");
                return EXIT_FAILED;
            }
            // The socket is gone: rvsd has exited.
            Err(_) => {
                println!("rvsd has exited");
                return if timed_out { EXIT_FAILED } else { 0 };
            }
        }
    }
}

/// `-S`: list everything and print it as rules.
fn save(socket: &str) -> u8 {
    let request = Request::List { service: None };
    let response = match exchange(socket, &request) {
        Ok(r) => r,
        Err(e) => return client_failure(&e),
    };
    if let Some(code) = access_failure(&response) {
        return code;
    }
    let text = match &response {
        Response::Services { services } => format::rules(services),
        other => format::render(&request, other, &Output::default()),
    };
    match text {
        Ok(text) => print(&text),
        Err(e) => {
            eprintln!("{e}");
            EXIT_FAILED
        }
    }
}

/// `-R`: rules from stdin, sent as one all-or-nothing batch.
fn restore(socket: &str) -> u8 {
    let mut input = String::new();
    if let Err(e) = io::stdin().read_to_string(&mut input) {
        eprintln!("rvsadm: cannot read rules from stdin: {e}");
        return EXIT_FAILED;
    }
    let batch = match cli::parse_rules(&input) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_USAGE;
        }
    };
    request_and_print(socket, batch, &Output::default())
}

/// Prints a connection problem, and its exit status.
fn client_failure(e: &ClientError) -> u8 {
    eprintln!("{e}");
    match e {
        ClientError::Connect { .. } => EXIT_USAGE,
        ClientError::Exchange { .. } => EXIT_FAILED,
    }
}

/// Prints an answer that says rvsd did not serve this client (denied, or still busy), and its
/// exit status; None for any other answer.
fn access_failure(response: &Response) -> Option<u8> {
    match response {
        Response::Error {
            kind: ErrorKind::Denied,
            message,
        } => {
            eprintln!("rvsadm: {message}");
            Some(EXIT_USAGE)
        }
        Response::Error {
            kind: ErrorKind::Busy,
            message,
        } => {
            eprintln!(
                "rvsadm: rvsd stayed busy for {} s: {message}",
                BUSY_WAIT.as_secs()
            );
            Some(EXIT_FAILED)
        }
        _ => None,
    }
}

/// One request, one answer; a `busy` answer (nothing was done) is retried for up to
/// [`BUSY_WAIT`].
fn exchange(socket: &str, request: &Request) -> Result<Response, ClientError> {
    let give_up = Instant::now() + BUSY_WAIT;
    let mut pause = Duration::from_millis(10);
    loop {
        let response = exchange_once(socket, request)?;
        let busy = matches!(
            response,
            Response::Error {
                kind: ErrorKind::Busy,
                ..
            }
        );
        let now = Instant::now();
        if !busy || now + pause > give_up {
            return Ok(response);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(250));
    }
}

/// `-L -c`: every page from `from` on, each printed as it comes.
fn list_connections(socket: &str, from: Option<ConnCursor>, output: &cli::Output) -> u8 {
    let mut printer = format::ConnectionsPrinter::new(output);
    let mut out = io::BufWriter::new(io::stdout().lock());
    let mut from = from;
    // The open connection and when it last answered.
    let mut open: Option<(UnixStream, Instant)> = None;
    let mut pause = Duration::from_millis(10);
    let mut progress = Instant::now();
    loop {
        let mut stream = match open.take() {
            Some((s, answered)) if answered.elapsed() < REUSE_FOR => s,
            _ => match connect(socket) {
                Ok(s) => s,
                Err(e) => return client_failure(&e),
            },
        };
        let request = Request::Connections { from };
        let response = match exchange_on(&mut stream, socket, &request) {
            Ok(r) => r,
            Err(e) => return client_failure(&e),
        };
        let busy = matches!(
            response,
            Response::Error {
                kind: ErrorKind::Busy,
                ..
            }
        );
        // Busy (rate or slot limits; the connection may be closed): the same page again on a
        // new connection, for up to BUSY_WAIT without progress.
        if busy && progress.elapsed() + pause <= BUSY_WAIT {
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(250));
            continue;
        }
        if let Some(code) = access_failure(&response) {
            return code;
        }
        let (conns, next, local) = match response {
            Response::Connections { conns, next, local } => (conns, next, local),
            other => {
                let _ = out.flush();
                let e = format::render(&request, &other, output)
                    .err()
                    .unwrap_or_else(|| format::FormatError::Refused("no sessions".into()));
                eprintln!("{e}");
                return EXIT_FAILED;
            }
        };
        open = Some((stream, Instant::now()));
        progress = Instant::now();
        pause = Duration::from_millis(10);
        let text = match printer.page(&conns, local) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{e}");
                return EXIT_FAILED;
            }
        };
        if let Some(code) = write_out(&mut out, &text) {
            return code;
        }
        match next {
            Some(n) => from = Some(n),
            None => break,
        }
    }
    let end = printer.finish();
    if let Some(code) = write_out(&mut out, &end) {
        return code;
    }
    match out.flush() {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            eprintln!("rvsadm: cannot write output: {e}");
            EXIT_FAILED
        }
        _ => 0,
    }
}

/// Writes `text`; an exit status if that ends the listing (0 for a closed pipe, as with
/// `rvsadm -Lnc | head`).
fn write_out(out: &mut impl Write, text: &str) -> Option<u8> {
    match out.write_all(text.as_bytes()) {
        Ok(()) => None,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Some(0),
        Err(e) => {
            eprintln!("rvsadm: cannot write output: {e}");
            Some(EXIT_FAILED)
        }
    }
}

/// One connection, one request, one answer.
fn exchange_once(socket: &str, request: &Request) -> Result<Response, ClientError> {
    let mut stream = connect(socket)?;
    exchange_on(&mut stream, socket, request)
}

/// A connection to rvsd at `socket`, with rvsadm's timeouts.
fn connect(socket: &str) -> Result<UnixStream, ClientError> {
    let path = PathBuf::from(socket);
    let stream = UnixStream::connect(&path).map_err(|source| ClientError::Connect {
        path: socket.to_owned(),
        source,
    })?;
    let timeouts = stream
        .set_read_timeout(Some(ANSWER_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(ANSWER_TIMEOUT)));
    timeouts.map_err(|e| ClientError::Exchange {
        path: socket.to_owned(),
        source: FrameError::Io(e),
    })?;
    Ok(stream)
}

/// One request and its answer on `stream`.
fn exchange_on(
    stream: &mut UnixStream,
    socket: &str,
    request: &Request,
) -> Result<Response, ClientError> {
    let broken = |source: FrameError| ClientError::Exchange {
        path: socket.to_owned(),
        source,
    };
    let envelope = Envelope {
        version: proto::VERSION,
        request: request.clone(),
    };
    // rvsd may answer (busy, denied) and close without reading the request: the answer is
    // still there to read when sending failed.
    let sent = proto::write_frame(stream, &envelope);
    let body = match proto::read_frame_bytes(stream) {
        Ok(body) => body,
        Err(e) => return Err(broken(sent.err().unwrap_or(e))),
    };
    proto::decode_response(&body).map_err(broken)
}
