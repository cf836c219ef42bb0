//! `rvsd`: the rvs director daemon.
//!
//! ```text
//! rvsd [-f FILE]              run the director described by FILE (/etc/rvs/rvsd.toml)
//! rvsd -t [FILE]              check FILE (or --config's) and exit: 0 if it is valid
//! rvsd -v | -h                version, help
//! ```
//! Logs go to standard error ([`logging`]: colours on a terminal, priority-prefixed plain lines
//! under journald; `RVS_LOG=debug` for more). Under systemd (`Type=notify`) rvsd says READY
//! once its ports are up and its control socket listens, RELOADING/READY around a reload and
//! STOPPING when it stops ([`notify`]). On SIGINT or SIGTERM the workers stop, the ports are
//! stopped and closed, the EAL is cleaned up, and one line of counters per worker is printed
//! on standard output. SIGHUP reloads services, addresses and timeouts. SIGUSR1 drains a
//! cluster director (`[cluster]`): its announcements are withdrawn, its sessions swept to the
//! peers, then it stops as on SIGTERM (like `rvsadm --drain`).

mod daemon;
mod logging;
mod notify;

use clap::Parser;
use control::config::RvsConfig;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use signal_hook::iterator::Signals;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tracing::{error, info};

/// The configuration file when `--config` is not given.
const DEFAULT_CONFIG: &str = "/etc/rvs/rvsd.toml";

/// rvsd's command line.
#[derive(Parser, Debug)]
#[command(
    name = "rvsd",
    version,
    disable_version_flag = true,
    about = "The rvs director: a kernel-bypass L4 load balancer (LVS/IPVS's NAT, DR, TUN and FullNAT on DPDK)",
    after_help = "Signals: SIGHUP reloads the configuration, SIGUSR1 drains a cluster director, \
                  SIGINT/SIGTERM stop.\nEnvironment: RVS_LOG sets the log filter (default info).\n\
                  See rvsd(8) and rvsd.toml(5)."
)]
struct Args {
    /// The configuration file.
    #[arg(short = 'f', long = "config", value_name = "FILE", default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    /// Check the configuration (FILE, else --config's) and exit: status 0 if it is valid.
    #[arg(
        short = 't',
        long = "check-config",
        value_name = "FILE",
        num_args = 0..=1
    )]
    check_config: Option<Option<PathBuf>>,
    /// Print the version and exit.
    #[arg(short = 'v', long = "version", action = clap::ArgAction::Version)]
    version: (),
}

fn main() -> ExitCode {
    let log_filter = logging::init(logging::Style::detect());
    let args = Args::parse();
    match &args.check_config {
        Some(Some(p)) => check(p),
        Some(None) => check(&args.config),
        None => run(&args.config, log_filter),
    }
}

/// `--check-config`: loads and checks `path`, says what it holds.
fn check(path: &Path) -> ExitCode {
    let shown = path.display();
    match RvsConfig::load(&path.to_string_lossy()) {
        Ok(c) => {
            println!(
                "{shown}: configuration OK ({} ports, {} services, {} workers)",
                c.ports.len(),
                c.director.services.len(),
                c.daemon.workers
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rvsd: {shown}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(path: &Path, log_filter: logging::LogFilterSetter) -> ExitCode {
    let path = path.to_string_lossy();
    let cfg = match RvsConfig::load(&path) {
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
    let systemd = notify::Notifier::from_env();
    let (ports, services) = (cfg.ports.len(), cfg.director.services.len());
    let mut d = match daemon::Daemon::start(cfg) {
        Ok(d) => d,
        Err(e) => {
            daemon::report(&e);
            eprintln!("rvsd: {e}");
            return ExitCode::FAILURE;
        }
    };
    d.set_log_filter_setter(log_filter);
    info!("running; SIGHUP reloads {path}, SIGUSR1 drains (in a cluster), SIGINT/SIGTERM stop");
    systemd.ready(&format!("forwarding: {ports} ports, {services} services"));
    for sig in signals.forever() {
        if sig == SIGUSR1 {
            d.drain();
            continue;
        }
        if sig == SIGHUP {
            systemd.reloading();
            let outcome = RvsConfig::load(&path)
                .map_err(daemon::DaemonError::from)
                .and_then(|new| d.reload(new));
            match outcome {
                Ok(()) => {
                    info!("reloaded {path}");
                    systemd.ready("forwarding: reloaded");
                }
                Err(e) => {
                    error!("reload refused: {e}");
                    systemd.ready(&format!("forwarding: reload refused: {e}"));
                }
            }
            continue;
        }
        info!(signal = sig, "stopping");
        break;
    }
    systemd.stopping();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("rvsd").chain(args.iter().copied()))
    }

    #[test]
    fn command_line_forms() {
        let a = parse(&[]).unwrap();
        assert_eq!(a.config, PathBuf::from(DEFAULT_CONFIG));
        assert!(a.check_config.is_none());
        assert_eq!(
            parse(&["--config=/x.toml"]).unwrap().config,
            PathBuf::from("/x.toml")
        );
        assert_eq!(parse(&["-f", "/y"]).unwrap().config, PathBuf::from("/y"));
        // -t alone checks --config's file; -t FILE its own.
        let a = parse(&["-t", "-f", "/z"]).unwrap();
        assert_eq!(a.check_config, Some(None));
        assert_eq!(a.config, PathBuf::from("/z"));
        let a = parse(&["--check-config", "/w"]).unwrap();
        assert_eq!(a.check_config, Some(Some(PathBuf::from("/w"))));
        let a = parse(&["--check-config"]).unwrap();
        assert_eq!(a.check_config, Some(None));
        assert_eq!(
            parse(&["-v"]).unwrap_err().kind(),
            clap::error::ErrorKind::DisplayVersion
        );
        assert_eq!(
            parse(&["--bogus"]).unwrap_err().kind(),
            clap::error::ErrorKind::UnknownArgument
        );
    }
}
