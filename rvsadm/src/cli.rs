//! rvsadm's command line: ipvsadm's syntax, parsed into an [`Invocation`].
//!
//! The grammar, the defaults and the error messages follow ipvsadm.c (`parse_options`,
//! `process_options`, `generic_opt_check` and its `commands_v_options` table), so that an
//! operator's `ipvsadm` command lines and scripts work unchanged:
//!
//! - options are popt-style: short ones cluster (`-Ln`, `-At 192.0.2.1:80`), take their value
//!   attached or as the next word (`-w3`, `-w 3`), long ones take `--opt value` or `--opt=value`;
//!   `-p`'s timeout is optional and taken only from a following word that is not an option;
//! - exactly one command; each command accepts, requires or refuses each option as in ipvsadm's
//!   table, with ipvsadm's messages ("Illegal 'weight' option with the 'add-service' command");
//! - defaults as in ipvsadm: scheduler `wlc`, weight 1, forwarding `-g` (DR), a dest without
//!   a port takes the service's port, and DR/TUN dests always take the service's port;
//! - `-p` without a timeout is 300 s, the default ipvsadm's manual documents;
//! - addresses are ipvsadm's: `192.0.2.1[:port]`, `[2001:db8::10][:port]`, or a bare IPv6
//!   address without a port (`2001:db8::10`): an IPv6 address carries a port only in brackets.
//!   A bare IPv6 address whose last group reads as a port (`2001:db8::1:80`) is refused as
//!   ambiguous (ipvsadm would silently take it as an address), and so is `[192.0.2.1]:80`;
//!   a dest of another family than its service's VIP is refused before anything is sent.
//!
//! rvs-specific: `--icmp VIP` (an ICMP echo service), `--fullnat` (FullNAT forwarding, as in
//! DPVS's ipvsadm), `--json`, `--workers`, `--ports` and `--reload FILE`. Host and port names are not
//! resolved (rvs is numeric only, so `-n` is accepted and implied), and firewall marks (hence
//! `-6`, which only marks a fwmark service IPv6) and thresholds are not supported: their
//! options are refused by name.
//!
//! [`parse_rules`] reads `-S` output (one ipvsadm command line per line) back into one
//! [`Request::Batch`], for `-R`.

use proto::{DaemonRole, DestSpec, ProtoName, Request, SvcKey};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The scheduler of a service added without `-s` (ipvsadm's `DEF_SCHED`).
pub const DEFAULT_SCHEDULER: &str = "wlc";

/// The persistence timeout of `-p` without a value, in seconds (ipvsadm's manual).
pub const DEFAULT_PERSISTENCE: u32 = 300;

/// The largest timeout `-p` and `--set` accept, in seconds (ipvsadm's `MAX_TIMEOUT`, 31 days).
pub const MAX_TIMEOUT: u32 = 86_400 * 31;

/// The largest dest weight (`-w`), as in ipvsadm.
pub const MAX_WEIGHT: u32 = 65_535;

/// Where rvsd listens unless `--socket` or [`SOCKET_ENV`] says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/rvs/rvsd.sock";

/// The environment variable naming rvsd's socket.
pub const SOCKET_ENV: &str = "RVS_SOCKET";

/// What one rvsadm command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// Send `request` to rvsd and print its answer as `output` says.
    Request {
        /// The request.
        request: Request,
        /// How to print the answer.
        output: Output,
    },
    /// `-S`: list everything, then print it as rules that `-R` reads back.
    Save {
        /// How to print (only `numeric`, which is implied anyway).
        output: Output,
    },
    /// `-R`: read rules from stdin and send them as one [`Request::Batch`].
    Restore,
    /// `-h`: print the usage.
    Help,
    /// `-v`: print the version.
    Version,
}

/// How to print an answer (the listing options of `-L`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Output {
    /// `-n`: numeric addresses and ports. Accepted; rvsadm never resolves names anyway.
    pub numeric: bool,
    /// `--stats`: the counters layout.
    pub stats: bool,
    /// `--rate`: the rates layout.
    pub rate: bool,
    /// `--exact`: numbers in full, without K/M/G/T.
    pub exact: bool,
    /// `--json`: the answer's payload as JSON instead of a table.
    pub json: bool,
    /// `-c`: the connection (session) listing.
    pub connections: bool,
    /// `--timeout`: the timeouts.
    pub timeout: bool,
    /// `--nosort`: keep rvsd's order instead of sorting services and dests like ipvsadm.
    pub nosort: bool,
}

/// Why a command line was refused. The messages are ipvsadm's where ipvsadm has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CliError {
    /// Options but no command (ipvsadm's `tryhelp_exit`).
    #[error("Try `rvsadm -h' or 'rvsadm --help' for more information.")]
    NoCommand,
    /// An option neither ipvsadm nor rvsadm knows (popt's message).
    #[error("{0}: unknown option")]
    UnknownOption(String),
    /// An option of ipvsadm's that rvs does not have (fwmark, thresholds, tunnel types...).
    #[error("{0}: not supported by rvs")]
    Unsupported(String),
    /// `-6`/`--ipv6`: in ipvsadm it makes a fwmark service IPv6; rvs has no fwmark services,
    /// and its IPv6 services are named by their address.
    #[error(
        "{0}: not supported by rvs: IPv6 services are given by their bracketed address \
         (-t [2001:db8::10]:80); -6 only applies to fwmark services (-f), which rvs does not have"
    )]
    Ipv6Fwmark(String),
    /// An option that takes a value was last on the line (popt's message).
    #[error("{0}: missing argument")]
    MissingArgument(String),
    /// A flag was given a value with `--flag=value` (popt's message).
    #[error("{0}: option does not take an argument")]
    UnwantedArgument(String),
    /// Two commands on one line.
    #[error("multiple commands specified")]
    MultipleCommands,
    /// The same option twice (`-g -m` counts: both are the forwarding method).
    #[error("multiple '{0}' options specified")]
    MultipleOptions(&'static str),
    /// A command lacks an option it needs (`-a` without `-r`).
    #[error("You need to supply the '{option}' option for the '{command}' command")]
    OptionRequired {
        /// ipvsadm's name of the option.
        option: &'static str,
        /// ipvsadm's name of the command.
        command: &'static str,
    },
    /// A command was given an option it does not take (`-A -w 3`).
    #[error("Illegal '{option}' option with the '{command}' command")]
    OptionIllegal {
        /// ipvsadm's name of the option.
        option: &'static str,
        /// ipvsadm's name of the command.
        command: &'static str,
    },
    /// Two options that exclude each other (`-L -c -t ...`).
    #[error(
        "The option '{option}' conflicts with the '{other}' option in the '{command}' command"
    )]
    OptionConflict {
        /// The later option.
        option: &'static str,
        /// The earlier one.
        other: &'static str,
        /// ipvsadm's name of the command.
        command: &'static str,
    },
    /// `-c` or `--timeout` with `--stats` or `--rate`.
    #[error("options conflicts in the list command")]
    ListConflict,
    /// `-t`/`-u`/`--icmp` with something that is not `IPv4[:port]`, `[IPv6][:port]` or a bare
    /// IPv6 address (rvs resolves no names).
    #[error("illegal virtual server address[:port] specified")]
    IllegalService,
    /// `-r` with something that is not `IPv4[:port]`, `[IPv6][:port]` or a bare IPv6 address.
    #[error("illegal real server address[:port] specified")]
    IllegalServer,
    /// A bare IPv6 address whose last group reads as a port (`2001:db8::1:80`): an IPv6
    /// address carries a port only in brackets, so which one was meant is said with them.
    #[error(
        "illegal {server} server address[:port] specified: `{given}' is ambiguous; write \
         [{addr}]:{port} for a port, or [{given}] for the address"
    )]
    AmbiguousAddress {
        /// `virtual` (`-t`/`-u`/`--icmp`) or `real` (`-r`).
        server: &'static str,
        /// What was given.
        given: String,
        /// The address, if the last group was meant as a port.
        addr: Ipv6Addr,
        /// That port.
        port: u16,
    },
    /// A dest whose address family is not its service's (the kernel's `EAFNOSUPPORT`; rvsd
    /// refuses it too).
    #[error("Address family of destination {dest} differs from the service's VIP {vip}")]
    FamilyMismatch {
        /// The service's VIP.
        vip: IpAddr,
        /// The dest's address.
        dest: IpAddr,
    },
    /// `-w` outside 0..=65535.
    #[error("illegal weight specified")]
    IllegalWeight,
    /// `-p` or `--set` with a value that is not a number of seconds in range.
    #[error("invalid timeout value `{0}' specified")]
    InvalidTimeout(String),
    /// `--set` with fewer than three values.
    #[error("--set option requires 3 timeout values")]
    SetNeedsThree,
    /// A word that belongs to no option.
    #[error("unexpected argument {0}")]
    UnexpectedArgument(String),
    /// `-j` with something other than `enable` or `disable`.
    #[error("illegal synproxy value `{0}': use -j enable or -j disable")]
    SynProxyValue(String),
    /// `--proxy-protocol` with a word other than v1, v2 or disable.
    #[error("illegal proxy-protocol value `{0}': use --proxy-protocol v1, v2 or disable")]
    ProxyProtocolValue(String),

    /// `-A`/`-E` with port 0 and no `-p` (only a persistent service may match every port).
    #[error("Zero port specified for non-persistent service")]
    ZeroPort,
    /// A port on an ICMP service or on a dest of one (rvs-specific).
    #[error("ICMP services and their real servers have no port")]
    IcmpPort,
    /// `--start-daemon`/`--stop-daemon` with a state other than master or backup.
    #[error("illegal {command} parameter `{state}': use master or backup")]
    DaemonState {
        /// `start-daemon` or `stop-daemon`.
        command: &'static str,
        /// What was given.
        state: String,
    },
    /// A sync daemon option with a value out of range.
    #[error("illegal {option} value `{value}': {expected}")]
    DaemonValue {
        /// The option, with its dashes.
        option: &'static str,
        /// What was given.
        value: String,
        /// What it must be.
        expected: &'static str,
    },
    /// A sync daemon option without `--start-daemon`, or `--daemon` without `-L`.
    #[error("the '{option}' option goes with the '{command}' command only")]
    DaemonOption {
        /// The option.
        option: &'static str,
        /// The command it belongs to.
        command: &'static str,
    },
    /// `--reload` with a path that cannot be made absolute.
    #[error("cannot make `{path}' an absolute path: {reason}")]
    ReloadPath {
        /// The path given.
        path: String,
        /// Why.
        reason: String,
    },
}

impl CliError {
    /// The exit status ipvsadm uses for this error: 255 (its `-1`) where it prints the
    /// "Try ..." hint or a popt message, 2 (its `fail(2, ...)`) otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::NoCommand
            | CliError::UnknownOption(_)
            | CliError::MissingArgument(_)
            | CliError::UnwantedArgument(_) => 255,
            _ => 2,
        }
    }

    /// Whether the "Try `rvsadm -h' ..." hint should follow the message.
    pub fn wants_hint(&self) -> bool {
        matches!(
            self,
            CliError::UnknownOption(_)
                | CliError::Unsupported(_)
                | CliError::Ipv6Fwmark(_)
                | CliError::MissingArgument(_)
                | CliError::UnwantedArgument(_)
        )
    }
}

/// Why `-R` input was refused. Nothing of it is sent then.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    /// A line is not a valid command line.
    #[error("line {line}: {source}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        source: CliError,
    },
    /// A line is valid but is not a change (a listing, `-S`, `-R`, `--reload`, `-h`...).
    #[error("line {line}: only changes (-A -E -D -a -e -d -C -Z --set) can be restored")]
    NotAChange {
        /// 1-based line number.
        line: usize,
    },
}

/// The commands, in ipvsadm's order, with ipvsadm's names (`cmdnames[]`) in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Command {
    Add,
    Edit,
    Del,
    Flush,
    List,
    AddDest,
    DelDest,
    EditDest,
    Timeout,
    Restore,
    Save,
    Zero,
    Reload,
    Workers,
    Ports,
    Lips,
    Health,
    StartDaemon,
    StopDaemon,
    Addresses,
    Cluster,
    Drain,
    LogLevel,
}

impl Command {
    fn name(self) -> &'static str {
        match self {
            Command::Add => "add-service",
            Command::Edit => "edit-service",
            Command::Del => "delete-service",
            Command::Flush => "flush",
            Command::List => "list",
            Command::AddDest => "add-server",
            Command::DelDest => "delete-server",
            Command::EditDest => "edit-server",
            Command::Timeout => "set",
            Command::Restore => "restore",
            Command::Save => "save",
            Command::Zero => "zero",
            Command::Reload => "reload",
            Command::Workers => "workers",
            Command::Ports => "ports",
            Command::Lips => "lips",
            Command::Health => "health",
            Command::StartDaemon => "start-daemon",
            Command::StopDaemon => "stop-daemon",
            Command::Addresses => "addresses",
            Command::Cluster => "cluster",
            Command::Drain => "drain",
            Command::LogLevel => "log-level",
        }
    }

    /// One row of ipvsadm's `commands_v_options`, over [`Opt::ALL`]:
    /// `+` compulsory, `x` illegal, `1` exclusive, ` ` optional.
    #[rustfmt::skip]
    fn row(self) -> &'static [u8; Opt::COUNT] {
        // Columns, in Opt::ALL order: numeric, connection, service-address, scheduler,
        // persistent, real-server, forwarding-method, weight, timeout, stats, rate, nosort,
        // exact, json, synproxy, proxy-protocol, toa.
        match self {
            //                                       ncvsprfwtsrnejyPT
            Command::Add | Command::Edit =>        b"xx+  xxxxxxxxx   ",
            Command::Del =>                        b"xx+xxxxxxxxxxxxxx",
            Command::List =>                       b" 11xxxxx1     xxx",
            Command::AddDest | Command::EditDest => b"xx+xx+  xxxxxxxxx",
            Command::DelDest =>                    b"xx+xx+xxxxxxxxxxx",
            Command::Save =>                       b" xxxxxxxxxxxxxxxx",
            Command::Zero =>                       b"xx xxxxxxxxxxxxxx",
            Command::Workers | Command::Ports | Command::Lips | Command::Health | Command::Addresses
            | Command::Cluster => {
                                                   b" xxxxxxxxxxx  xxx"
            }
            Command::Flush | Command::Timeout | Command::Restore | Command::Reload
            | Command::StartDaemon | Command::StopDaemon | Command::Drain | Command::LogLevel => {
                                                   b"xxxxxxxxxxxxxxxxx"
            }
        }
    }
}

/// The options that ipvsadm's table checks, in ipvsadm's `optnames[]` order, plus `json`,
/// `synproxy` (DPVS's `-j`) and `proxy-protocol` (DPVS's word too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opt {
    Numeric,
    Connection,
    Service,
    Scheduler,
    Persistent,
    Server,
    Forward,
    Weight,
    Timeout,
    Stats,
    Rate,
    NoSort,
    Exact,
    Json,
    SynProxy,
    ProxyProtocol,
    Toa,
}

impl Opt {
    const COUNT: usize = 17;
    const ALL: [Opt; Opt::COUNT] = [
        Opt::Numeric,
        Opt::Connection,
        Opt::Service,
        Opt::Scheduler,
        Opt::Persistent,
        Opt::Server,
        Opt::Forward,
        Opt::Weight,
        Opt::Timeout,
        Opt::Stats,
        Opt::Rate,
        Opt::NoSort,
        Opt::Exact,
        Opt::Json,
        Opt::SynProxy,
        Opt::ProxyProtocol,
        Opt::Toa,
    ];

    fn name(self) -> &'static str {
        match self {
            Opt::Numeric => "numeric",
            Opt::Connection => "connection",
            Opt::Service => "service-address",
            Opt::Scheduler => "scheduler",
            Opt::Persistent => "persistent",
            Opt::Server => "real-server",
            Opt::Forward => "forwarding-method",
            Opt::Weight => "weight",
            Opt::Timeout => "timeout",
            Opt::Stats => "stats",
            Opt::Rate => "rate",
            Opt::NoSort => "nosort",
            Opt::Exact => "exact",
            Opt::Json => "json",
            Opt::SynProxy => "synproxy",
            Opt::ProxyProtocol => "proxy-protocol",
            Opt::Toa => "toa",
        }
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

/// What an option word means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Cmd(Command),
    Help,
    Version,
    Service(ProtoName),
    Scheduler,
    Persistent,
    SynProxy,
    ProxyProtocol,
    Server,
    Mode(Mode),
    Weight,
    Flag(Opt),
    Sort,
    /// A `--start-daemon` setting.
    Daemon(DaemonOpt),
    /// `--daemon` (`-L --daemon`).
    DaemonList,
    /// `-6`: refused, with a word on how rvs names IPv6 services.
    Ipv6,
    Unsupported,
}

/// The sync daemon's settings (ipvsadm's, plus rvs's unicast peers and refresh period).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DaemonOpt {
    Interface,
    SyncId,
    MaxLen,
    Group,
    Port,
    Ttl,
    Peer,
    Refresh,
}

impl DaemonOpt {
    fn name(self) -> &'static str {
        match self {
            DaemonOpt::Interface => "--mcast-interface",
            DaemonOpt::SyncId => "--syncid",
            DaemonOpt::MaxLen => "--sync-maxlen",
            DaemonOpt::Group => "--mcast-group",
            DaemonOpt::Port => "--mcast-port",
            DaemonOpt::Ttl => "--mcast-ttl",
            DaemonOpt::Peer => "--sync-peer",
            DaemonOpt::Refresh => "--sync-refresh",
        }
    }
}

/// What the `--start-daemon` options said.
#[derive(Debug, Default)]
struct DaemonArgs {
    interface: Option<String>,
    sync_id: Option<u8>,
    maxlen: Option<u16>,
    group: Option<Ipv4Addr>,
    port: Option<u16>,
    ttl: Option<u8>,
    peers: Vec<std::net::SocketAddrV4>,
    refresh_secs: Option<u32>,
    /// The first option given, for the message when no `--start-daemon` goes with it.
    first: Option<DaemonOpt>,
}

/// Whether an option takes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arity {
    None,
    Required,
    Optional,
}

/// A forwarding method (`-g`, `-m`, `-i`, `--fullnat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Dr,
    Nat,
    Tun,
    FullNat,
}

impl Mode {
    /// The name [`DestSpec::mode`] carries.
    fn wire_name(self) -> &'static str {
        match self {
            Mode::Dr => "dr",
            Mode::Nat => "nat",
            Mode::Tun => "tun",
            Mode::FullNat => "fullnat",
        }
    }
}

/// One option: short letter, long names, meaning, arity.
struct Spec {
    short: Option<char>,
    long: &'static [&'static str],
    key: Key,
    arity: Arity,
}

const fn spec(short: Option<char>, long: &'static [&'static str], key: Key, arity: Arity) -> Spec {
    Spec {
        short,
        long,
        key,
        arity,
    }
}

/// ipvsadm's option table (`options_table[]` in `parse_options`), plus rvs's own options and
/// the ipvsadm options rvs refuses by name.
#[rustfmt::skip]
const SPECS: &[Spec] = &[
    spec(Some('A'), &["add-service"], Key::Cmd(Command::Add), Arity::None),
    spec(Some('E'), &["edit-service"], Key::Cmd(Command::Edit), Arity::None),
    spec(Some('D'), &["delete-service"], Key::Cmd(Command::Del), Arity::None),
    spec(Some('C'), &["clear"], Key::Cmd(Command::Flush), Arity::None),
    spec(Some('L'), &["list"], Key::Cmd(Command::List), Arity::None),
    spec(Some('l'), &[], Key::Cmd(Command::List), Arity::None),
    spec(Some('Z'), &["zero"], Key::Cmd(Command::Zero), Arity::None),
    spec(Some('a'), &["add-server"], Key::Cmd(Command::AddDest), Arity::None),
    spec(Some('e'), &["edit-server"], Key::Cmd(Command::EditDest), Arity::None),
    spec(Some('d'), &["delete-server"], Key::Cmd(Command::DelDest), Arity::None),
    spec(None, &["set"], Key::Cmd(Command::Timeout), Arity::None),
    spec(Some('R'), &["restore"], Key::Cmd(Command::Restore), Arity::None),
    spec(Some('S'), &["save"], Key::Cmd(Command::Save), Arity::None),
    spec(None, &["reload"], Key::Cmd(Command::Reload), Arity::Required),
    spec(None, &["workers"], Key::Cmd(Command::Workers), Arity::None),
    spec(None, &["ports"], Key::Cmd(Command::Ports), Arity::None),
    spec(None, &["lips"], Key::Cmd(Command::Lips), Arity::None),
    spec(None, &["health"], Key::Cmd(Command::Health), Arity::None),
    spec(None, &["addresses"], Key::Cmd(Command::Addresses), Arity::None),
    spec(None, &["cluster"], Key::Cmd(Command::Cluster), Arity::None),
    spec(None, &["drain"], Key::Cmd(Command::Drain), Arity::Optional),
    spec(None, &["log-level"], Key::Cmd(Command::LogLevel), Arity::Required),
    spec(Some('h'), &["help"], Key::Help, Arity::None),
    spec(Some('v'), &["version"], Key::Version, Arity::None),
    spec(Some('t'), &["tcp-service"], Key::Service(ProtoName::Tcp), Arity::Required),
    spec(Some('u'), &["udp-service"], Key::Service(ProtoName::Udp), Arity::Required),
    spec(None, &["icmp", "icmp-service"], Key::Service(ProtoName::Icmp), Arity::Required),
    spec(Some('s'), &["scheduler"], Key::Scheduler, Arity::Required),
    spec(Some('p'), &["persistent"], Key::Persistent, Arity::Optional),
    spec(Some('j'), &["synproxy"], Key::SynProxy, Arity::Required),
    spec(None, &["proxy-protocol"], Key::ProxyProtocol, Arity::Required),
    spec(None, &["toa"], Key::Flag(Opt::Toa), Arity::None),
    spec(Some('r'), &["real-server"], Key::Server, Arity::Required),
    spec(Some('g'), &["gatewaying"], Key::Mode(Mode::Dr), Arity::None),
    spec(Some('m'), &["masquerading"], Key::Mode(Mode::Nat), Arity::None),
    spec(Some('i'), &["ipip"], Key::Mode(Mode::Tun), Arity::None),
    spec(None, &["fullnat"], Key::Mode(Mode::FullNat), Arity::None),
    spec(Some('w'), &["weight"], Key::Weight, Arity::Required),
    spec(Some('n'), &["numeric"], Key::Flag(Opt::Numeric), Arity::None),
    spec(Some('c'), &["connection"], Key::Flag(Opt::Connection), Arity::None),
    spec(None, &["timeout"], Key::Flag(Opt::Timeout), Arity::None),
    spec(None, &["stats"], Key::Flag(Opt::Stats), Arity::None),
    spec(None, &["rate"], Key::Flag(Opt::Rate), Arity::None),
    spec(Some('X'), &["exact"], Key::Flag(Opt::Exact), Arity::None),
    spec(None, &["nosort"], Key::Flag(Opt::NoSort), Arity::None),
    spec(None, &["sort"], Key::Sort, Arity::None),
    spec(None, &["json"], Key::Flag(Opt::Json), Arity::None),
    spec(None, &["start-daemon"], Key::Cmd(Command::StartDaemon), Arity::Required),
    spec(None, &["stop-daemon"], Key::Cmd(Command::StopDaemon), Arity::Required),
    spec(None, &["mcast-interface"], Key::Daemon(DaemonOpt::Interface), Arity::Required),
    spec(None, &["syncid"], Key::Daemon(DaemonOpt::SyncId), Arity::Required),
    spec(None, &["sync-maxlen"], Key::Daemon(DaemonOpt::MaxLen), Arity::Required),
    spec(None, &["mcast-group"], Key::Daemon(DaemonOpt::Group), Arity::Required),
    spec(None, &["mcast-port"], Key::Daemon(DaemonOpt::Port), Arity::Required),
    spec(None, &["mcast-ttl"], Key::Daemon(DaemonOpt::Ttl), Arity::Required),
    spec(None, &["sync-peer"], Key::Daemon(DaemonOpt::Peer), Arity::Required),
    spec(None, &["sync-refresh"], Key::Daemon(DaemonOpt::Refresh), Arity::Required),
    spec(None, &["daemon"], Key::DaemonList, Arity::None),
    // ipvsadm options rvs does not have: refused by name rather than as unknown.
    spec(Some('f'), &["fwmark-service"], Key::Unsupported, Arity::Required),
    spec(Some('M'), &["netmask"], Key::Unsupported, Arity::Required),
    spec(Some('x'), &["u-threshold"], Key::Unsupported, Arity::Required),
    spec(Some('y'), &["l-threshold"], Key::Unsupported, Arity::Required),
    spec(Some('6'), &["ipv6"], Key::Ipv6, Arity::None),
    spec(Some('o'), &["ops"], Key::Unsupported, Arity::None),
    spec(Some('b'), &["sched-flags"], Key::Unsupported, Arity::Required),
    spec(None, &["pe"], Key::Unsupported, Arity::Required),
    spec(None, &["thresholds"], Key::Unsupported, Arity::None),
    spec(None, &["persistent-conn"], Key::Unsupported, Arity::None),
    spec(None, &["tun-type"], Key::Unsupported, Arity::Required),
    spec(None, &["tun-port"], Key::Unsupported, Arity::Required),
    spec(None, &["tun-nocsum"], Key::Unsupported, Arity::None),
    spec(None, &["tun-csum"], Key::Unsupported, Arity::None),
    spec(None, &["tun-remcsum"], Key::Unsupported, Arity::None),
];

/// Every long option rvsadm reads, without its dashes, and whether rvs has it: `false` for
/// the ipvsadm options it refuses by name (fwmark services, thresholds, tunnel types...).
/// `-h` and the manual page list each one it has (a test checks both).
pub fn long_options() -> Vec<(&'static str, bool)> {
    let mut all: Vec<(&'static str, bool)> = SPECS
        .iter()
        .flat_map(|s| s.long.iter().map(move |l| (*l, s.supported())))
        .collect();
    // Taken out of the line before parsing (split_socket).
    all.push(("socket", true));
    all
}

/// Every short option rvsadm reads, and whether rvs has it (as [`long_options`]).
pub fn short_options() -> Vec<(char, bool)> {
    SPECS
        .iter()
        .filter_map(|s| s.short.map(|c| (c, s.supported())))
        .collect()
}

impl Spec {
    /// Whether rvs has this option (rather than refusing it by name).
    fn supported(&self) -> bool {
        !matches!(self.key, Key::Unsupported | Key::Ipv6)
    }
}

/// The option with short letter `c`.
fn find_short(c: char) -> Option<&'static Spec> {
    SPECS.iter().find(|s| s.short == Some(c))
}

/// The option with long name `name` (without the dashes).
fn find_long(name: &str) -> Option<&'static Spec> {
    SPECS.iter().find(|s| s.long.contains(&name))
}

/// A service as parsed: the port is `None` when the command line gave none.
#[derive(Debug, Clone, Copy)]
struct SvcArg {
    proto: ProtoName,
    vip: IpAddr,
    port: Option<u16>,
}

/// Everything gathered from the options, before the command is checked and built.
#[derive(Debug, Default)]
struct State {
    command: Option<Command>,
    options: u32,
    service: Option<SvcArg>,
    scheduler: Option<String>,
    persistence: Option<u32>,
    synproxy: bool,
    /// `--proxy-protocol`'s word, checked by rvsd (`v1`, `v2`, `disable`).
    proxy_protocol: Option<String>,
    /// `--toa`.
    toa: bool,
    server: Option<(IpAddr, Option<u16>)>,
    mode: Option<Mode>,
    weight: Option<u32>,
    reload: Option<String>,
    /// `--log-level`'s filter.
    log_level: Option<String>,
    /// `--start-daemon`/`--stop-daemon`'s state word.
    daemon_state: Option<String>,
    /// `--drain [SECONDS]`.
    drain: Option<Option<u32>>,
    daemon: DaemonArgs,
    /// `-L --daemon`.
    list_daemon: bool,
    output: Output,
}

/// The outcome of one option: keep going, or stop at `-h`/`-v`.
enum Step {
    Continue,
    Stop(Invocation),
}

impl State {
    fn set_command(&mut self, command: Command) -> Result<(), CliError> {
        if self.command.is_some() {
            return Err(CliError::MultipleCommands);
        }
        self.command = Some(command);
        Ok(())
    }

    fn set_option(&mut self, opt: Opt) -> Result<(), CliError> {
        if self.options & opt.bit() != 0 {
            return Err(CliError::MultipleOptions(opt.name()));
        }
        self.options |= opt.bit();
        Ok(())
    }

    /// Applies one option (`word` is how it was written, for messages).
    fn apply(&mut self, key: Key, word: &str, value: Option<&str>) -> Result<Step, CliError> {
        match key {
            Key::Help | Key::Version => {
                if self.command.is_some() {
                    return Err(CliError::MultipleCommands);
                }
                return Ok(Step::Stop(if key == Key::Help {
                    Invocation::Help
                } else {
                    Invocation::Version
                }));
            }
            Key::Cmd(command) => {
                self.set_command(command)?;
                if command == Command::Reload {
                    self.reload = value.map(str::to_owned);
                }
                if command == Command::LogLevel {
                    self.log_level = value.map(str::to_owned);
                }
                if matches!(command, Command::StartDaemon | Command::StopDaemon) {
                    self.daemon_state = value.map(str::to_owned);
                }
                if command == Command::Drain {
                    self.drain = Some(match value {
                        None => None,
                        Some(v) => Some(parse_timeout(v, 1)?),
                    });
                }
            }
            Key::Service(proto) => {
                self.set_option(Opt::Service)?;
                let given = value.unwrap_or_default();
                let (vip, port) = parse_addr_port(given).map_err(|e| e.for_service(given))?;
                if proto == ProtoName::Icmp && port.is_some_and(|p| p != 0) {
                    return Err(CliError::IcmpPort);
                }
                self.service = Some(SvcArg { proto, vip, port });
            }
            Key::Scheduler => {
                self.set_option(Opt::Scheduler)?;
                self.scheduler = value.map(str::to_owned);
            }
            Key::Persistent => {
                self.set_option(Opt::Persistent)?;
                self.persistence = Some(match value {
                    None => DEFAULT_PERSISTENCE,
                    Some(v) => parse_timeout(v, 1)?,
                });
            }
            Key::SynProxy => {
                self.set_option(Opt::SynProxy)?;
                self.synproxy = match value.unwrap_or_default() {
                    "enable" => true,
                    "disable" => false,
                    other => return Err(CliError::SynProxyValue(other.to_owned())),
                };
            }
            Key::ProxyProtocol => {
                self.set_option(Opt::ProxyProtocol)?;
                let v = value.unwrap_or_default();
                if !matches!(v, "v1" | "v2" | "disable") {
                    return Err(CliError::ProxyProtocolValue(v.to_owned()));
                }
                self.proxy_protocol = Some(v.to_owned()).filter(|v| v != "disable");
            }
            Key::Server => {
                self.set_option(Opt::Server)?;
                let given = value.unwrap_or_default();
                let server = parse_addr_port(given).map_err(|e| e.for_server(given))?;
                self.server = Some(server);
            }
            Key::Mode(mode) => {
                self.set_option(Opt::Forward)?;
                self.mode = Some(mode);
            }
            Key::Weight => {
                self.set_option(Opt::Weight)?;
                let w = value
                    .and_then(|v| string_to_number(v, 0, i64::from(MAX_WEIGHT)))
                    .ok_or(CliError::IllegalWeight)?;
                // In range 0..=65535 by the check above.
                self.weight = Some(u32::try_from(w).map_err(|_| CliError::IllegalWeight)?);
            }
            Key::Flag(opt) => {
                self.set_option(opt)?;
                let out = &mut self.output;
                match opt {
                    Opt::Numeric => out.numeric = true,
                    Opt::Connection => out.connections = true,
                    Opt::Timeout => out.timeout = true,
                    Opt::Stats => out.stats = true,
                    Opt::Rate => out.rate = true,
                    Opt::Exact => out.exact = true,
                    Opt::Json => out.json = true,
                    Opt::NoSort => out.nosort = true,
                    Opt::Toa => self.toa = true,
                    Opt::Service
                    | Opt::Scheduler
                    | Opt::Persistent
                    | Opt::Server
                    | Opt::Forward
                    | Opt::Weight
                    | Opt::SynProxy
                    | Opt::ProxyProtocol => {}
                }
            }
            Key::Sort => {}
            Key::Daemon(opt) => self.daemon_option(opt, value.unwrap_or_default())?,
            Key::DaemonList => {
                if self.list_daemon {
                    return Err(CliError::MultipleOptions("daemon"));
                }
                self.list_daemon = true;
            }
            Key::Ipv6 => return Err(CliError::Ipv6Fwmark(word.to_owned())),
            Key::Unsupported => return Err(CliError::Unsupported(word.to_owned())),
        }
        Ok(Step::Continue)
    }
}

impl State {
    /// One `--start-daemon` setting, checked as it comes.
    fn daemon_option(&mut self, opt: DaemonOpt, v: &str) -> Result<(), CliError> {
        let bad = |expected| CliError::DaemonValue {
            option: opt.name(),
            value: v.to_owned(),
            expected,
        };
        let number =
            |lo: i64, hi: i64, expected| string_to_number(v, lo, hi).ok_or_else(|| bad(expected));
        let d = &mut self.daemon;
        d.first.get_or_insert(opt);
        let once = |given: bool| {
            if given {
                Err(CliError::MultipleOptions(&opt.name()[2..]))
            } else {
                Ok(())
            }
        };
        match opt {
            DaemonOpt::Interface => {
                once(d.interface.is_some())?;
                if v.is_empty() || v.len() > 15 || v.contains('/') {
                    return Err(bad("an interface name of 1 to 15 characters"));
                }
                d.interface = Some(v.to_owned());
            }
            DaemonOpt::SyncId => {
                once(d.sync_id.is_some())?;
                d.sync_id = Some(number(0, 255, "0 to 255")? as u8);
            }
            DaemonOpt::MaxLen => {
                once(d.maxlen.is_some())?;
                d.maxlen = Some(number(128, 65_507, "128 to 65507 bytes")? as u16);
            }
            DaemonOpt::Port => {
                once(d.port.is_some())?;
                d.port = Some(number(1, 65_535, "1 to 65535")? as u16);
            }
            DaemonOpt::Ttl => {
                once(d.ttl.is_some())?;
                d.ttl = Some(number(1, 255, "1 to 255")? as u8);
            }
            DaemonOpt::Refresh => {
                once(d.refresh_secs.is_some())?;
                d.refresh_secs = Some(number(0, 86_400, "0 to 86400 seconds")? as u32);
            }
            DaemonOpt::Group => {
                once(d.group.is_some())?;
                let g: Ipv4Addr = v
                    .parse()
                    .ok()
                    .filter(Ipv4Addr::is_multicast)
                    .ok_or_else(|| bad("an IPv4 multicast group"))?;
                d.group = Some(g);
            }
            DaemonOpt::Peer => {
                let p = if let Ok(a) = v.parse::<std::net::SocketAddrV4>() {
                    Some(a).filter(|a| a.port() != 0)
                } else {
                    v.parse::<Ipv4Addr>()
                        .ok()
                        .map(|a| std::net::SocketAddrV4::new(a, 0))
                };
                let p = p
                    .filter(|a| !a.ip().is_unspecified() && !a.ip().is_multicast())
                    .ok_or_else(|| bad("a unicast IPv4 address[:port]"))?;
                d.peers.push(p);
            }
        }
        Ok(())
    }
}

/// Parses one command line (the words after the program name) as ipvsadm would.
///
/// No words at all lists the table, as ipvsadm does.
///
/// # Errors
/// A [`CliError`] with ipvsadm's message for the first problem found, in ipvsadm's order:
/// option values as they come, then stray words, then the command/option table, then the
/// rules that span options (zero port, list conflicts).
pub fn parse(args: &[String]) -> Result<Invocation, CliError> {
    if args.is_empty() {
        return Ok(Invocation::Request {
            request: Request::List { service: None },
            output: Output {
                numeric: true,
                ..Output::default()
            },
        });
    }
    let mut state = State::default();
    let mut positional: Vec<&str> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let word = args[i].as_str();
        i += 1;
        if word == "--" {
            positional.extend(args[i..].iter().map(String::as_str));
            break;
        }
        if let Some(long) = word.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (long, None),
            };
            let shown = format!("--{name}");
            let spec = find_long(name).ok_or_else(|| CliError::UnknownOption(shown.clone()))?;
            let value = match spec.arity {
                Arity::None => {
                    if inline.is_some() {
                        return Err(CliError::UnwantedArgument(shown));
                    }
                    None
                }
                Arity::Required => match inline {
                    Some(v) => Some(v),
                    None => {
                        let v = args
                            .get(i)
                            .ok_or_else(|| CliError::MissingArgument(shown.clone()))?;
                        i += 1;
                        Some(v.as_str())
                    }
                },
                Arity::Optional => match inline {
                    Some(v) => Some(v),
                    None => optional_value(args, &mut i),
                },
            };
            if let Step::Stop(inv) = state.apply(spec.key, &shown, value)? {
                return Ok(inv);
            }
        } else if word.len() > 1 && word.starts_with('-') {
            let cluster = &word[1..];
            for (at, c) in cluster.char_indices() {
                let shown = format!("-{c}");
                let spec = find_short(c).ok_or_else(|| CliError::UnknownOption(shown.clone()))?;
                let rest = &cluster[at + c.len_utf8()..];
                let (value, ends) = match spec.arity {
                    Arity::None => (None, false),
                    Arity::Required if !rest.is_empty() => (Some(rest), true),
                    Arity::Required => {
                        let v = args
                            .get(i)
                            .ok_or_else(|| CliError::MissingArgument(shown.clone()))?;
                        i += 1;
                        (Some(v.as_str()), true)
                    }
                    Arity::Optional if !rest.is_empty() => (Some(rest), true),
                    Arity::Optional => (optional_value(args, &mut i), true),
                };
                if let Step::Stop(inv) = state.apply(spec.key, &shown, value)? {
                    return Ok(inv);
                }
                if ends {
                    break;
                }
            }
        } else {
            positional.push(word);
        }
    }
    build(state, &positional)
}

/// An optional value: the next word, unless there is none or it is an option (popt).
fn optional_value<'a>(args: &'a [String], i: &mut usize) -> Option<&'a str> {
    let next = args.get(*i)?;
    if next.starts_with('-') {
        return None;
    }
    *i += 1;
    Some(next.as_str())
}

/// Checks the gathered options against the command and makes the [`Invocation`].
fn build(state: State, positional: &[&str]) -> Result<Invocation, CliError> {
    let command = state.command.ok_or(CliError::NoCommand)?;
    let mut positional = positional.iter();
    let mut timeouts = [0u32; 3];
    if command == Command::Timeout {
        for t in &mut timeouts {
            let word = positional.next().ok_or(CliError::SetNeedsThree)?;
            *t = parse_timeout(word, 0)?;
        }
    }
    if let Some(word) = positional.next() {
        return Err(CliError::UnexpectedArgument((*word).to_owned()));
    }
    check_options(command, state.options)?;
    if let (Some(opt), false) = (state.daemon.first, command == Command::StartDaemon) {
        return Err(CliError::DaemonOption {
            option: opt.name(),
            command: "--start-daemon",
        });
    }
    if state.list_daemon && command != Command::List {
        return Err(CliError::DaemonOption {
            option: "--daemon",
            command: "-L",
        });
    }

    let service = state.service.map(|s| SvcKey {
        proto: s.proto,
        vip: s.vip,
        port: s.port.unwrap_or(0),
    });
    let output = state.output;
    let request = match command {
        Command::Add | Command::Edit => {
            let service = service.ok_or(CliError::IllegalService)?;
            if service.proto != ProtoName::Icmp && service.port == 0 && state.persistence.is_none()
            {
                return Err(CliError::ZeroPort);
            }
            let scheduler = match state.scheduler {
                Some(s) if !s.is_empty() => s,
                _ => DEFAULT_SCHEDULER.to_owned(),
            };
            let persistence = state.persistence;
            let synproxy = state.synproxy;
            let proxy_protocol = state.proxy_protocol;
            let toa = state.toa;
            if command == Command::Add {
                Request::AddService {
                    service,
                    scheduler,
                    persistence,
                    synproxy,
                    proxy_protocol,
                    toa,
                }
            } else {
                Request::EditService {
                    service,
                    scheduler,
                    persistence,
                    synproxy,
                    proxy_protocol,
                    toa,
                }
            }
        }
        Command::Del => Request::DeleteService {
            service: service.ok_or(CliError::IllegalService)?,
        },
        Command::Flush => Request::Clear,
        Command::List => {
            if (output.connections || output.timeout) && (output.stats || output.rate) {
                return Err(CliError::ListConflict);
            }
            if state.list_daemon {
                if output.connections || output.timeout || output.rate || service.is_some() {
                    return Err(CliError::ListConflict);
                }
                return Ok(Invocation::Request {
                    request: Request::Daemons,
                    output,
                });
            }
            if output.connections {
                Request::Connections { from: None }
            } else if output.timeout {
                Request::Timeouts
            } else {
                Request::List { service }
            }
        }
        Command::AddDest | Command::EditDest | Command::DelDest => {
            let service = service.ok_or(CliError::IllegalService)?;
            let (addr, port) = state.server.ok_or(CliError::IllegalServer)?;
            // NAT64: an IPv6 service's FullNAT dest may be IPv4 (and is deleted as any).
            let nat64 = service.vip.is_ipv6()
                && addr.is_ipv4()
                && (command == Command::DelDest || state.mode == Some(Mode::FullNat));
            if addr.is_ipv6() != service.vip.is_ipv6() && !nat64 {
                return Err(CliError::FamilyMismatch {
                    vip: service.vip,
                    dest: addr,
                });
            }
            if service.proto == ProtoName::Icmp && port.is_some_and(|p| p != 0) {
                return Err(CliError::IcmpPort);
            }
            let mode = state.mode.unwrap_or(Mode::Dr);
            // ipvsadm: a dest without a port takes the service's; DR and TUN cannot map
            // ports, so their dests always take the service's (process_options).
            let port = match (command, mode, port) {
                (Command::DelDest, _, Some(p)) => p,
                (_, Mode::Dr | Mode::Tun, _) | (_, _, None) => service.port,
                (_, _, Some(p)) => p,
            };
            if command == Command::DelDest {
                Request::DeleteDest {
                    service,
                    addr,
                    port,
                }
            } else {
                let dest = DestSpec {
                    addr,
                    port,
                    weight: state.weight.unwrap_or(1),
                    mode: mode.wire_name().to_owned(),
                };
                if command == Command::AddDest {
                    Request::AddDest { service, dest }
                } else {
                    Request::EditDest { service, dest }
                }
            }
        }
        Command::Timeout => Request::SetTimeouts {
            tcp: timeouts[0],
            tcpfin: timeouts[1],
            udp: timeouts[2],
        },
        Command::Restore => return Ok(Invocation::Restore),
        Command::Save => return Ok(Invocation::Save { output }),
        Command::Zero => Request::Zero { service },
        Command::Reload => {
            let path = state.reload.unwrap_or_default();
            let absolute = std::path::absolute(&path).map_err(|e| CliError::ReloadPath {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            Request::Reload {
                path: absolute.to_string_lossy().into_owned(),
            }
        }
        Command::LogLevel => Request::LogLevel {
            filter: state.log_level.unwrap_or_default(),
        },
        Command::Workers => Request::Workers,
        Command::Ports => Request::Ports,
        Command::Lips => Request::Lips,
        Command::Health => Request::Health,
        Command::StartDaemon | Command::StopDaemon => {
            let word = state.daemon_state.unwrap_or_default();
            let role = match word.as_str() {
                "master" => DaemonRole::Master,
                "backup" => DaemonRole::Backup,
                _ => {
                    return Err(CliError::DaemonState {
                        command: command.name(),
                        state: word,
                    })
                }
            };
            if command == Command::StopDaemon {
                Request::StopDaemon { role }
            } else {
                let d = state.daemon;
                let port = d.port;
                Request::StartDaemon {
                    role,
                    interface: d.interface,
                    sync_id: d.sync_id,
                    maxlen: d.maxlen,
                    group: d.group,
                    port,
                    ttl: d.ttl,
                    // A peer without a port uses the sync port (rvsd's when not given here).
                    peers: d
                        .peers
                        .into_iter()
                        .map(|p| {
                            if p.port() == 0 {
                                std::net::SocketAddrV4::new(*p.ip(), port.unwrap_or(8848))
                            } else {
                                p
                            }
                        })
                        .collect(),
                    refresh_secs: d.refresh_secs,
                }
            }
        }
        Command::Addresses => Request::Addresses,
        Command::Cluster => Request::Cluster,
        Command::Drain => Request::Drain {
            timeout_secs: state.drain.flatten(),
        },
    };
    Ok(Invocation::Request { request, output })
}

/// ipvsadm's `generic_opt_check`: each option against the command's row, in table order.
fn check_options(command: Command, options: u32) -> Result<(), CliError> {
    let row = command.row();
    let mut first_exclusive: Option<Opt> = None;
    for (opt, rule) in Opt::ALL.iter().zip(row.iter()) {
        let given = options & opt.bit() != 0;
        match (given, rule) {
            (false, b'+') => {
                return Err(CliError::OptionRequired {
                    option: opt.name(),
                    command: command.name(),
                })
            }
            (true, b'x') => {
                return Err(CliError::OptionIllegal {
                    option: opt.name(),
                    command: command.name(),
                })
            }
            (true, b'1') => match first_exclusive {
                None => first_exclusive = Some(*opt),
                Some(other) => {
                    return Err(CliError::OptionConflict {
                        option: opt.name(),
                        other: other.name(),
                        command: command.name(),
                    })
                }
            },
            _ => {}
        }
    }
    Ok(())
}

/// ipvsadm's `string_to_number`: a base-10 integer (C `strtol`: leading blanks and a sign
/// allowed, nothing after the digits) within `min..=max`.
fn string_to_number(s: &str, min: i64, max: i64) -> Option<i64> {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (negative, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let magnitude: i64 = digits.parse().ok()?;
    let n = if negative { -magnitude } else { magnitude };
    (min..=max).contains(&n).then_some(n)
}

/// ipvsadm's `parse_timeout`: seconds in `min..=MAX_TIMEOUT`.
fn parse_timeout(s: &str, min: u32) -> Result<u32, CliError> {
    string_to_number(s, i64::from(min), i64::from(MAX_TIMEOUT))
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| CliError::InvalidTimeout(s.to_owned()))
}

/// Why an address word (`-t`, `-u`, `--icmp`, `-r`) was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AddrError {
    /// Not an address (with or without a port) that rvsadm reads.
    Illegal,
    /// A bare IPv6 address that also reads as `IPv6:port`.
    Ambiguous {
        /// The address, if the last group was meant as a port.
        addr: Ipv6Addr,
        /// That port.
        port: u16,
    },
}

impl AddrError {
    /// The error for the service address `given` (`-t`, `-u`, `--icmp`).
    fn for_service(self, given: &str) -> CliError {
        self.into_cli(CliError::IllegalService, "virtual", given)
    }

    /// The error for the real server address `given` (`-r`).
    fn for_server(self, given: &str) -> CliError {
        self.into_cli(CliError::IllegalServer, "real", given)
    }

    /// `illegal` for a word that is no address, else the ambiguity, named for `server`.
    fn into_cli(self, illegal: CliError, server: &'static str, given: &str) -> CliError {
        match self {
            AddrError::Illegal => illegal,
            AddrError::Ambiguous { addr, port } => CliError::AmbiguousAddress {
                server,
                given: given.to_owned(),
                addr,
                port,
            },
        }
    }
}

/// ipvsadm's `parse_service`, numeric only: `IPv4` or `IPv4:port` (split at the last colon),
/// `[IPv6]` or `[IPv6]:port`, or a bare `IPv6` without a port (a port needs the brackets).
/// All digits is refused, as in ipvsadm (it would otherwise read as an address).
fn parse_addr_port(s: &str) -> Result<(IpAddr, Option<u16>), AddrError> {
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AddrError::Illegal);
    }
    if let Some(inner) = s.strip_prefix('[') {
        return parse_bracketed(inner);
    }
    if let Ok(addr) = s.parse::<Ipv6Addr>() {
        return match trailing_port(s) {
            Some((addr, port)) => Err(AddrError::Ambiguous { addr, port }),
            None => Ok((addr.into(), None)),
        };
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    };
    let addr: Ipv4Addr = host.parse().map_err(|_| AddrError::Illegal)?;
    let port = port.map(parse_port).transpose()?;
    Ok((addr.into(), port))
}

/// What follows a `[`: `IPv6]` or `IPv6]:port`. An IPv4 address in brackets is refused.
fn parse_bracketed(inner: &str) -> Result<(IpAddr, Option<u16>), AddrError> {
    let (host, rest) = inner.split_once(']').ok_or(AddrError::Illegal)?;
    let addr: Ipv6Addr = host.parse().map_err(|_| AddrError::Illegal)?;
    let port = match rest {
        "" => None,
        _ => Some(parse_port(
            rest.strip_prefix(':').ok_or(AddrError::Illegal)?,
        )?),
    };
    Ok((addr.into(), port))
}

/// A port as ipvsadm reads it: `string_to_number` in `0..=65535` (no service names).
fn parse_port(p: &str) -> Result<u16, AddrError> {
    string_to_number(p, 0, 65_535)
        .and_then(|n| u16::try_from(n).ok())
        .ok_or(AddrError::Illegal)
}

/// Whether the bare IPv6 address `s` also reads as `IPv6:port`: its last group is decimal
/// and what is before it is an IPv6 address too (`2001:db8::1:80`); that reading if so.
fn trailing_port(s: &str) -> Option<(Ipv6Addr, u16)> {
    let (head, tail) = s.rsplit_once(':')?;
    if tail.is_empty() || !tail.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let addr = head.parse::<Ipv6Addr>().ok()?;
    let port = tail.parse::<u16>().ok()?;
    Some((addr, port))
}

/// Takes `--socket PATH` (or `--socket=PATH`) out of `args`, wherever it is.
///
/// # Errors
/// [`CliError::MissingArgument`] when `--socket` is last.
pub fn split_socket(args: &[String]) -> Result<(Option<String>, Vec<String>), CliError> {
    let mut socket = None;
    let mut rest = Vec::with_capacity(args.len());
    let mut words = args.iter();
    while let Some(word) = words.next() {
        if word == "--" {
            rest.push(word.clone());
            rest.extend(words.cloned());
            break;
        }
        if word == "--socket" {
            let path = words
                .next()
                .ok_or_else(|| CliError::MissingArgument("--socket".to_owned()))?;
            socket = Some(path.clone());
        } else if let Some(path) = word.strip_prefix("--socket=") {
            socket = Some(path.to_owned());
        } else {
            rest.push(word.clone());
        }
    }
    Ok((socket, rest))
}

/// Reads rules as `-S` prints them (and as ipvsadm-restore reads them) into one
/// [`Request::Batch`], in order.
///
/// Each line is one command line; everything from a `#` on is a comment; blank lines are
/// skipped; a leading `ipvsadm` or `rvsadm` word is dropped. Only changes may appear.
///
/// # Errors
/// The first bad line, by number; nothing is to be applied then.
pub fn parse_rules(input: &str) -> Result<Request, RestoreError> {
    let mut requests = Vec::new();
    for (index, raw) in input.lines().enumerate() {
        let line = index + 1;
        let text = raw.split('#').next().unwrap_or_default();
        let mut words: Vec<String> = text.split_whitespace().map(str::to_owned).collect();
        if words
            .first()
            .is_some_and(|w| w == "ipvsadm" || w == "rvsadm")
        {
            words.remove(0);
        }
        if words.is_empty() {
            continue;
        }
        match parse(&words).map_err(|source| RestoreError::Line { line, source })? {
            Invocation::Request { request, .. } if Request::is_change(&request) => {
                requests.push(request)
            }
            _ => return Err(RestoreError::NotAChange { line }),
        }
    }
    Ok(Request::Batch { requests })
}

/// The `-v` line.
pub fn version() -> String {
    format!(
        "rvsadm v{} (control protocol {})\n",
        env!("CARGO_PKG_VERSION"),
        proto::VERSION
    )
}

/// The `-h` text, after ipvsadm's `usage_exit`, listing what rvsadm accepts.
pub fn usage() -> String {
    let mut s = version();
    s.push_str(
        "Usage:
  rvsadm -A|E -t|u|--icmp service-address [-s scheduler] [-p [timeout]]
  rvsadm -D -t|u|--icmp service-address
  rvsadm -C
  rvsadm -R
  rvsadm -S [-n]
  rvsadm -a|e -t|u|--icmp service-address -r server-address [options]
  rvsadm -d -t|u|--icmp service-address -r server-address
  rvsadm -L|l [options]
  rvsadm -Z [-t|u|--icmp service-address]
  rvsadm --set tcp tcpfin udp
  rvsadm --reload config-file
  rvsadm --workers [--exact] [--json]
  rvsadm --ports [--exact] [--json]
  rvsadm --lips|--health [--json]
  rvsadm --start-daemon {master|backup} [daemon-options]
  rvsadm --stop-daemon {master|backup}
  rvsadm -L --daemon [--json]
  rvsadm --lips|--health|--addresses|--cluster [--json]
  rvsadm --drain [seconds]
  rvsadm --log-level filter
  rvsadm -h

Commands:
Either long or short options are allowed.
  --add-service     -A        add virtual service with options
  --edit-service    -E        edit virtual service with options
  --delete-service  -D        delete virtual service
  --clear           -C        clear the whole table
  --restore         -R        restore rules from stdin (all or nothing)
  --save            -S        save rules to stdout
  --add-server      -a        add real server with options
  --edit-server     -e        edit real server with options
  --delete-server   -d        delete real server
  --list            -L|-l     list the table
  --zero            -Z        zero counters in a service or all services
  --set tcp tcpfin udp        set connection timeout values (0 keeps a value)
  --reload config-file        apply a configuration file's services and timeouts
  --workers                   per-worker counters
  --ports                     DPDK ports: link, speed, packets, bytes, missed, errors, nombuf
  --lips                      LIPs and their ports: in use, in quarantine, free
  --health                    health-checked real servers and their state
  --start-daemon state        start a session sync daemon: master or backup
  --stop-daemon state         stop a session sync daemon: master or backup
  --addresses                 managed VIPs and LIPs ([ha]): owned or standby
  --cluster                   the cluster view ([cluster]): phase, announced routes, sync peers
  --drain [seconds]           withdraw this director's announcements, sync its sessions to
                              the peers, then rvsd exits; waits and reports (at most seconds,
                              default [cluster] drain_timeout)
  --log-level filter          rvsd's log filter until a restart: error, warn, info,
                              debug, trace, or per module (info,control=debug)
  --help            -h        display this help message
  --version         -v        display the version

Options:
  --tcp-service  -t service-address   service-address is IPv4[:port] or [IPv6][:port]
  --udp-service  -u service-address   service-address is IPv4[:port] or [IPv6][:port]
                                      (an IPv6 address takes a port only in brackets:
                                      -t [2001:db8::10]:80)
  --icmp            service-address   ICMP echo service, service-address is IPv4 or [IPv6]
  --icmp-service    service-address   the same as --icmp
  --scheduler    -s scheduler         the default scheduler is wlc.
  --persistent   -p [timeout]         persistent service (default 300 seconds)
  --synproxy     -j enable|disable    answer SYNs with SYN cookies; open the RS connection
                                      only after the client's ACK (tcp, NAT and FullNAT)
  --proxy-protocol  v1|v2|disable     put a PROXY protocol header with the client's address
                                      ahead of its data toward the RS (tcp, FullNAT and NAT)
  --toa                               put the client's address in TCP option 254 (TOA) of
                                      the connection's first segments toward the RS
  --real-server  -r server-address    server-address is IPv4[:port] or [IPv6][:port],
                                      of the service's address family (an IPv6
                                      service's --fullnat dests may be IPv4: NAT64)
  --gatewaying   -g                   gatewaying (direct routing) (default)
  --ipip         -i                   ipip encapsulation (tunneling)
  --masquerading -m                   masquerading (NAT)
  --fullnat                           full NAT (source and destination rewritten)
  --weight       -w weight            capacity of real server (0..65535, default 1)
  --connection   -c                   output of current connections
  --timeout                           output of timeout (tcp tcpfin udp)
  --stats                             output of statistics information
  --rate                              output of rate information
  --exact        -X                   expand numbers (display exact values)
  --nosort                            disable sorting output of service/server entries
  --sort                              sort output of service/server entries (the default)
  --json                              output as JSON
  --daemon                            output of the sync daemons (with -L)
  --mcast-interface interface         kernel interface of the sync daemon (default: [sync]
                                      interface, then the first port's exception TAP)
  --syncid sid                        sync id (0..255, default 0)
  --sync-maxlen length                largest sync datagram in bytes (default 1472)
  --mcast-group address               sync multicast group (default 224.0.0.81)
  --mcast-port port                   sync UDP port (default 8848)
  --mcast-ttl ttl                     sync multicast TTL (default 1)
  --sync-peer address[:port]          a unicast sync peer instead of the group (repeatable)
  --sync-refresh seconds              resend the whole table this often (default 30; 0: never)
  --numeric      -n                   numeric output (always: rvs resolves no names)
  --socket path                       rvsd's control socket (default $RVS_SOCKET,
                                      then /run/rvs/rvsd.sock)
",
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_to_number_is_strtol_in_range() {
        assert_eq!(string_to_number("80", 0, 65535), Some(80));
        assert_eq!(string_to_number("+80", 0, 65535), Some(80));
        assert_eq!(string_to_number(" 7", 0, 65535), Some(7));
        assert_eq!(string_to_number("-0", 0, 65535), Some(0));
        assert_eq!(string_to_number("65536", 0, 65535), None);
        assert_eq!(string_to_number("8x", 0, 65535), None);
        assert_eq!(string_to_number("", 0, 65535), None);
        assert_eq!(string_to_number("-", 0, 65535), None);
        assert_eq!(string_to_number("99999999999999999999999", 0, 65535), None);
    }

    #[test]
    fn addresses_are_numeric_ipv4_with_optional_port() {
        let a = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        let bad = Err(AddrError::Illegal);
        assert_eq!(parse_addr_port("192.0.2.1"), Ok((a, None)));
        assert_eq!(parse_addr_port("192.0.2.1:80"), Ok((a, Some(80))));
        assert_eq!(parse_addr_port("192.0.2.1:"), bad);
        assert_eq!(parse_addr_port("192.0.2.1:http"), bad);
        assert_eq!(parse_addr_port("www.example.com:80"), bad);
        assert_eq!(parse_addr_port("8080"), bad);
        assert_eq!(parse_addr_port(""), bad);
    }

    #[test]
    fn ipv6_addresses_take_a_port_only_in_brackets() {
        let a = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10));
        let bad = Err(AddrError::Illegal);
        assert_eq!(parse_addr_port("[2001:db8::10]:80"), Ok((a, Some(80))));
        assert_eq!(parse_addr_port("[2001:db8::10]:0"), Ok((a, Some(0))));
        assert_eq!(parse_addr_port("[2001:db8::10]"), Ok((a, None)));
        assert_eq!(parse_addr_port("2001:db8::10"), Ok((a, None)));
        assert_eq!(parse_addr_port("2001:db8:0:0:0:0:0:10"), Ok((a, None)));
        for word in [
            "[2001:db8::10",
            "[2001:db8::10]80",
            "[2001:db8::10]:",
            "[2001:db8::10]:65536",
            "[2001:db8::10]:http",
            "[2001:db8::10]]:80",
            "[]:80",
            "[]",
            "[192.0.2.1]:80",
            "[192.0.2.1]",
            "2001:db8::10]:80",
            "2001:db8::zz",
        ] {
            assert_eq!(parse_addr_port(word), bad, "{word}");
        }
        assert_eq!(
            parse_addr_port("2001:db8::1:80"),
            Err(AddrError::Ambiguous {
                addr: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
                port: 80
            })
        );
        assert_eq!(trailing_port("::1:443"), Some((Ipv6Addr::LOCALHOST, 443)));
        // Not ambiguous: a hex last group, or nothing that is an address before it.
        assert_eq!(trailing_port("2001:db8::1:ab"), None);
        assert_eq!(trailing_port("2001:db8::80"), None);
        assert_eq!(trailing_port("::1"), None);
    }

    #[test]
    fn every_row_of_the_table_is_complete() {
        for c in [
            Command::Add,
            Command::Edit,
            Command::Del,
            Command::Flush,
            Command::List,
            Command::AddDest,
            Command::DelDest,
            Command::EditDest,
            Command::Timeout,
            Command::Restore,
            Command::Save,
            Command::Zero,
            Command::Reload,
            Command::Workers,
            Command::Ports,
            Command::Lips,
            Command::Health,
            Command::StartDaemon,
            Command::StopDaemon,
            Command::Addresses,
            Command::Cluster,
            Command::Drain,
        ] {
            assert!(c.row().iter().all(|b| b" x+1".contains(b)), "{}", c.name());
        }
        assert_eq!(Opt::ALL.len(), Opt::COUNT);
        for (i, o) in Opt::ALL.iter().enumerate() {
            assert_eq!(*o as usize, i);
        }
    }
}
