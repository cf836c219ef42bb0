//! `rvsd`: the rvs director daemon.
//!
//! ```text
//! rvsd --config FILE          run the director described by FILE
//! rvsd --check-config FILE    check FILE and exit (0 if it is valid)
//! ```
//! Logs go to standard error (`RVS_LOG=debug` for more). On SIGINT or SIGTERM the workers
//! stop, the ports are stopped and closed, the EAL is cleaned up, and one line of counters per
//! worker is printed on standard output. SIGHUP reloads services, addresses and timeouts.
//! SIGUSR1 drains a cluster director (`[cluster]`): its announcements are withdrawn, its
//! sessions swept to the peers, then it stops as on SIGTERM (like `rvsadm --drain`).

mod daemon;

use control::config::RvsConfig;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use signal_hook::iterator::Signals;
use std::process::ExitCode;
use tracing::{error, info};

const USAGE: &str = "usage: rvsd --config FILE | --check-config FILE | --help | --version";

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RVS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["--help" | "-h"] => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        ["--version" | "-V"] => {
            println!("rvsd {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        ["--check-config", path] => match RvsConfig::load(path) {
            Ok(c) => {
                println!(
                    "{path}: configuration OK ({} ports, {} services, {} workers)",
                    c.ports.len(),
                    c.director.services.len(),
                    c.daemon.workers
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("rvsd: {path}: {e}");
                ExitCode::FAILURE
            }
        },
        ["--config", path] => run(path),
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run(path: &str) -> ExitCode {
    let cfg = match RvsConfig::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rvsd: {path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Registered before the EAL starts, so a signal during start-up is not lost.
    let mut signals = match Signals::new([SIGINT, SIGTERM, SIGHUP, SIGUSR1]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("rvsd: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut d = match daemon::Daemon::start(cfg) {
        Ok(d) => d,
        Err(e) => {
            daemon::report(&e);
            eprintln!("rvsd: {e}");
            return ExitCode::FAILURE;
        }
    };
    info!("running; SIGHUP reloads {path}, SIGUSR1 drains (in a cluster), SIGINT/SIGTERM stop");
    for sig in signals.forever() {
        if sig == SIGUSR1 {
            d.drain();
            continue;
        }
        if sig == SIGHUP {
            match RvsConfig::load(path).map_err(daemon::DaemonError::from) {
                Ok(new) => {
                    if let Err(e) = d.reload(new) {
                        error!("reload refused: {e}");
                    }
                }
                Err(e) => error!("reload refused: {e}"),
            }
            continue;
        }
        info!(signal = sig, "stopping");
        break;
    }
    let mut ok = true;
    for (w, r) in d.stop().into_iter().enumerate() {
        match r {
            Ok(c) => {
                let mut line = format!(
                    "worker {w} rx_packets={} tx_packets={} drops={} sessions_created={} sessions_expired={} redirected_out={} redirected_in={} exception={} arp_replies={}",
                    c.rx_packets(),
                    c.tx_packets(),
                    c.total_drops(),
                    c.sessions_created(),
                    c.sessions_expired(),
                    c.redirected_out(),
                    c.redirected_in(),
                    c.exception(),
                    c.arp_replies(),
                );
                for r in dataplane::DropReason::ALL {
                    let n = c.drop_count(*r);
                    if n > 0 {
                        line.push_str(&format!(" drop.{}={n}", r.as_str()));
                    }
                }
                println!("{line}");
            }
            Err(e) => {
                ok = false;
                eprintln!("rvsd: {e}");
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
