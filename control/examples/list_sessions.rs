//! `rvsadm -L -n -c` over a million sessions, measured: a control server over workers holding
//! `--sessions` UDP sessions (in-memory ports, as in `control/tests/listing.rs`), listed by the
//! real rvsadm binary as a table and as JSON. Prints the time of each listing and this
//! process's memory (the control server and the workers: what rvsd would hold) before and at
//! its peak during each listing, then checks that the output has every session exactly once.
//!
//! ```sh
//! scripts/listing                  # builds rvsadm and this example in release, runs it
//! target/release/examples/list_sessions --sessions 1000000 --workers 1 [--rvsadm PATH]
//! ```
//!
//! The workers run their slow jobs (which answer the listing) as often as they can, as rvsd's
//! busy-polling workers do.

#[path = "../tests/support/fleet.rs"]
mod fleet;

use fleet::{session_of, Fleet};
use proto::ConnView;
use serde::de::{Deserializer, SeqAccess, Visitor};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// A field of /proc/self/status, in kB.
fn status_kb(field: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Resets this process's peak RSS (VmHWM) to its current RSS (Linux `clear_refs`).
fn reset_peak() {
    if let Err(e) = std::fs::write("/proc/self/clear_refs", "5") {
        eprintln!("cannot reset the peak RSS ({e}): peaks include the fill");
    }
}

fn mib(kb: u64) -> String {
    format!("{:.1} MiB", kb as f64 / 1024.0)
}

/// Marks session `i` seen; false if it was already.
fn mark(seen: &mut [u8], addr: std::net::IpAddr, port: u16) -> Result<(), String> {
    let i = session_of(addr, port).ok_or_else(|| format!("{addr}:{port} is no session"))?;
    let slot = seen
        .get_mut(i as usize)
        .ok_or_else(|| format!("session {i} out of range"))?;
    *slot += 1;
    Ok(())
}

/// Checks a table listing: every session on one row.
fn check_table(path: &Path, seen: &mut [u8]) -> Result<(), String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| e.to_string())?;
        if n < 2 {
            continue;
        }
        let source = line
            .split_whitespace()
            .nth(3)
            .ok_or_else(|| format!("row {n}: {line}"))?;
        let (addr, port) = source
            .rsplit_once(':')
            .ok_or_else(|| format!("row {n}: {line}"))?;
        let addr = addr.parse().map_err(|_| format!("row {n}: {line}"))?;
        let port = port.parse().map_err(|_| format!("row {n}: {line}"))?;
        mark(seen, addr, port)?;
    }
    Ok(())
}

/// Reads a JSON array of sessions one element at a time, marking each.
struct Marker<'a>(&'a mut [u8]);

impl<'de> Visitor<'de> for Marker<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of sessions")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(c) = seq.next_element::<ConnView>()? {
            mark(self.0, c.source, c.sport).map_err(serde::de::Error::custom)?;
        }
        Ok(())
    }
}

/// Checks a `--json` listing: one valid array, every session in one element.
fn check_json(path: &Path, seen: &mut [u8]) -> Result<(), String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut de = serde_json::Deserializer::from_reader(BufReader::new(file));
    (&mut de)
        .deserialize_seq(Marker(seen))
        .map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())
}

struct Args {
    sessions: u32,
    workers: u32,
    rvsadm: PathBuf,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        sessions: 1_000_000,
        workers: 1,
        rvsadm: std::env::current_exe()
            .ok()
            .and_then(|e| Some(e.parent()?.parent()?.join("rvsadm")))
            .unwrap_or_else(|| PathBuf::from("rvsadm")),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--sessions" => a.sessions = value.parse().map_err(|e| format!("{flag}: {e}"))?,
            "--workers" => a.workers = value.parse().map_err(|e| format!("{flag}: {e}"))?,
            "--rvsadm" => a.rvsadm = PathBuf::from(value),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if a.workers == 0 {
        return Err("--workers must be at least 1".into());
    }
    Ok(a)
}

fn main() -> ExitCode {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("list_sessions: {e}");
            return ExitCode::from(2);
        }
    };
    let per = a.sessions / a.workers;
    let mut sizes = vec![per; a.workers as usize];
    sizes[0] += a.sessions - per * a.workers;
    let start = Instant::now();
    let fleet = Fleet::start(&sizes, Duration::ZERO);
    println!(
        "{} sessions on {} worker(s), filled in {:.2} s; RSS {}",
        a.sessions,
        a.workers,
        start.elapsed().as_secs_f64(),
        mib(status_kb("VmRSS:"))
    );
    let out = std::env::temp_dir().join(format!("rvs-list-sessions-{}", std::process::id()));
    let mut failed = false;
    for (name, json) in [("-L -n -c", false), ("-L -n -c --json", true)] {
        let file = match std::fs::File::create(&out) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("list_sessions: {}: {e}", out.display());
                return ExitCode::FAILURE;
            }
        };
        let before = status_kb("VmRSS:");
        reset_peak();
        let t = Instant::now();
        let mut cmd = Command::new(&a.rvsadm);
        cmd.env_remove("RVS_SOCKET")
            .arg("--socket")
            .arg(&fleet.sock)
            .args(["-L", "-n", "-c"])
            .stdout(Stdio::from(file));
        if json {
            cmd.arg("--json");
        }
        let status = match cmd.status() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("list_sessions: {}: {e}", a.rvsadm.display());
                return ExitCode::FAILURE;
            }
        };
        let took = t.elapsed();
        let peak = status_kb("VmHWM:");
        let bytes = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
        println!(
            "rvsadm {name}: {status} in {:.2} s ({:.0} sessions/s, {:.1} MB of output); \
             RSS {} before, peak {} (+{})",
            took.as_secs_f64(),
            f64::from(a.sessions) / took.as_secs_f64(),
            bytes as f64 / 1e6,
            mib(before),
            mib(peak),
            mib(peak.saturating_sub(before)),
        );
        let mut seen = vec![0u8; a.sessions as usize];
        let checked = if json {
            check_json(&out, &mut seen)
        } else {
            check_table(&out, &mut seen)
        };
        let missed = seen.iter().filter(|&&n| n == 0).count();
        let repeated = seen.iter().filter(|&&n| n > 1).count();
        match checked {
            Ok(()) if status.success() && missed == 0 && repeated == 0 => {
                println!("  every session listed exactly once")
            }
            Ok(()) => {
                println!("  FAILED: {missed} sessions missed, {repeated} listed more than once");
                failed = true;
            }
            Err(e) => {
                println!("  FAILED: {e}");
                failed = true;
            }
        }
    }
    let _ = std::fs::remove_file(&out);
    drop(fleet);
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
