//! ipvsadm command lines parsed into requests, and every refusal with ipvsadm's message.

use proto::{DaemonRole, DestSpec, ProtoName, Request, SvcKey};
use rvsadm::cli::{self, CliError, Invocation, Output, RestoreError};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

fn words(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_owned).collect()
}

fn parse(line: &str) -> Result<Invocation, CliError> {
    cli::parse(&words(line))
}

/// The request a line sends (panics, in the test, if it sends none).
fn request(line: &str) -> Request {
    match parse(line) {
        Ok(Invocation::Request { request, .. }) => request,
        other => panic!("{line}: {other:?}"),
    }
}

fn output(line: &str) -> Output {
    match parse(line) {
        Ok(Invocation::Request { output, .. }) => output,
        other => panic!("{line}: {other:?}"),
    }
}

fn error(line: &str) -> String {
    match parse(line) {
        Err(e) => e.to_string(),
        Ok(inv) => panic!("{line}: accepted as {inv:?}"),
    }
}

fn tcp(a: u8, port: u16) -> SvcKey {
    SvcKey {
        proto: ProtoName::Tcp,
        vip: Ipv4Addr::new(192, 0, 2, a).into(),
        port,
    }
}

fn udp(a: u8, port: u16) -> SvcKey {
    SvcKey {
        proto: ProtoName::Udp,
        ..tcp(a, port)
    }
}

fn dest(last: u8, port: u16, weight: u32, mode: &str) -> DestSpec {
    DestSpec {
        addr: Ipv4Addr::new(10, 1, 0, last).into(),
        port,
        weight,
        mode: mode.to_owned(),
    }
}

#[test]
fn add_service_defaults_to_wlc_without_persistence() {
    assert_eq!(
        request("-A -t 192.0.2.1:80"),
        Request::AddService {
            service: tcp(1, 80),
            scheduler: "wlc".into(),
            persistence: None,
            synproxy: false,
            proxy_protocol: None,
            toa: false
        }
    );
}

#[test]
fn add_service_with_scheduler_and_persistence() {
    let want = Request::AddService {
        service: tcp(1, 80),
        scheduler: "wrr".into(),
        persistence: Some(600),
        synproxy: false,
        proxy_protocol: None,
        toa: false,
    };
    for line in [
        "-A -t 192.0.2.1:80 -s wrr -p 600",
        "--add-service --tcp-service 192.0.2.1:80 --scheduler wrr --persistent 600",
        "--add-service --tcp-service=192.0.2.1:80 --scheduler=wrr --persistent=600",
        "-At 192.0.2.1:80 -swrr -p600",
        "-A -p 600 -s wrr -t 192.0.2.1:80",
    ] {
        assert_eq!(request(line), want, "{line}");
    }
}

#[test]
fn persistent_without_a_value_is_300_seconds() {
    for line in [
        "-A -t 192.0.2.1:80 -p",
        "-A -t 192.0.2.1:80 -p -s rr",
        "-A -t 192.0.2.1:80 --persistent -s rr",
    ] {
        match request(line) {
            Request::AddService { persistence, .. } => {
                assert_eq!(persistence, Some(300), "{line}")
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn persistent_service_may_have_port_zero() {
    assert_eq!(
        request("-A -t 192.0.2.1 -p 60 -s rr"),
        Request::AddService {
            service: tcp(1, 0),
            scheduler: "rr".into(),
            persistence: Some(60),
            synproxy: false,
            proxy_protocol: None,
            toa: false
        }
    );
}

#[test]
fn empty_scheduler_falls_back_to_the_default_like_ipvsadm() {
    match request("-A -t 192.0.2.1:80 --scheduler=") {
        Request::AddService { scheduler, .. } => assert_eq!(scheduler, "wlc"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn udp_and_icmp_services() {
    assert_eq!(
        request("-A -u 192.0.2.2:53 -s rr"),
        Request::AddService {
            service: udp(2, 53),
            scheduler: "rr".into(),
            persistence: None,
            synproxy: false,
            proxy_protocol: None,
            toa: false
        }
    );
    let icmp = SvcKey {
        proto: ProtoName::Icmp,
        vip: Ipv4Addr::new(192, 0, 2, 9).into(),
        port: 0,
    };
    assert_eq!(
        request("-A --icmp 192.0.2.9 -s rr"),
        Request::AddService {
            service: icmp,
            scheduler: "rr".into(),
            persistence: None,
            synproxy: false,
            proxy_protocol: None,
            toa: false
        }
    );
    assert_eq!(
        request("-a --icmp-service 192.0.2.9 -r 10.1.0.31"),
        Request::AddDest {
            service: icmp,
            dest: dest(31, 0, 1, "dr")
        }
    );
}

#[test]
fn edit_service_sends_the_whole_service_as_ipvsadm_does() {
    // ipvsadm -E without -s resets the scheduler to wlc, and without -p drops persistence.
    assert_eq!(
        request("-E -t 192.0.2.1:80 -s rr"),
        Request::EditService {
            service: tcp(1, 80),
            scheduler: "rr".into(),
            persistence: None,
            synproxy: false,
            proxy_protocol: None,
            toa: false
        }
    );
    assert_eq!(
        request("--edit-service -t 192.0.2.1:80 -p 120"),
        Request::EditService {
            service: tcp(1, 80),
            scheduler: "wlc".into(),
            persistence: Some(120),
            synproxy: false,
            proxy_protocol: None,
            toa: false
        }
    );
}

#[test]
fn delete_service() {
    for line in [
        "-D -t 192.0.2.1:80",
        "--delete-service --tcp-service 192.0.2.1:80",
    ] {
        assert_eq!(
            request(line),
            Request::DeleteService {
                service: tcp(1, 80)
            }
        );
    }
}

#[test]
fn add_server_defaults_are_dr_weight_1_and_the_service_port() {
    assert_eq!(
        request("-a -t 192.0.2.1:80 -r 10.1.0.11"),
        Request::AddDest {
            service: tcp(1, 80),
            dest: dest(11, 80, 1, "dr")
        }
    );
}

#[test]
fn add_server_in_every_mode() {
    let cases = [
        (
            "-a -t 192.0.2.1:80 -r 10.1.0.11:8080 -m -w 3",
            dest(11, 8080, 3, "nat"),
        ),
        (
            "-a -t 192.0.2.1:80 -r 10.1.0.11:8080 --masquerading --weight 3",
            dest(11, 8080, 3, "nat"),
        ),
        (
            "-a -t 192.0.2.1:80 -r 10.1.0.11:8080 --fullnat -w 3",
            dest(11, 8080, 3, "fullnat"),
        ),
        (
            "-a -t 192.0.2.1:80 -r 10.1.0.11 --fullnat",
            dest(11, 80, 1, "fullnat"),
        ),
        (
            "-a -t 192.0.2.1:80 -r 10.1.0.11 -g -w 0",
            dest(11, 80, 0, "dr"),
        ),
        (
            "-a -t 192.0.2.1:80 -r 10.1.0.11 --gatewaying",
            dest(11, 80, 1, "dr"),
        ),
        (
            "-a -t 192.0.2.1:80 -r 10.1.0.11 -i -w 65535",
            dest(11, 80, 65535, "tun"),
        ),
        (
            "-a -t 192.0.2.1:80 -r 10.1.0.11 --ipip",
            dest(11, 80, 1, "tun"),
        ),
        (
            "--add-server -t 192.0.2.1:80 --real-server 10.1.0.11:8080 -m",
            dest(11, 8080, 1, "nat"),
        ),
        (
            "-a -t 192.0.2.1:80 -r 10.1.0.11:8080 -mw3",
            dest(11, 8080, 3, "nat"),
        ),
        // The dest port is resolved after all options, whatever their order.
        ("-a -r 10.1.0.11 -m -t 192.0.2.1:80", dest(11, 80, 1, "nat")),
    ];
    for (line, want) in cases {
        assert_eq!(
            request(line),
            Request::AddDest {
                service: tcp(1, 80),
                dest: want
            },
            "{line}"
        );
    }
}

#[test]
fn dr_and_tun_dests_take_the_service_port_as_in_ipvsadm() {
    // ipvsadm's process_options: "The destination port must be equal to the service port
    // if the IP_VS_CONN_F_TUNNEL or IP_VS_CONN_F_DROUTE is set."
    assert_eq!(
        request("-a -t 192.0.2.1:80 -r 10.1.0.11:8080"),
        Request::AddDest {
            service: tcp(1, 80),
            dest: dest(11, 80, 1, "dr")
        }
    );
    assert_eq!(
        request("-e -t 192.0.2.1:80 -r 10.1.0.11:8080 -i -w 2"),
        Request::EditDest {
            service: tcp(1, 80),
            dest: dest(11, 80, 2, "tun")
        }
    );
}

#[test]
fn edit_server_sends_defaults_for_what_is_not_given_as_ipvsadm_does() {
    assert_eq!(
        request("-e -t 192.0.2.1:80 -r 10.1.0.11:8080 -m -w 5"),
        Request::EditDest {
            service: tcp(1, 80),
            dest: dest(11, 8080, 5, "nat")
        }
    );
    assert_eq!(
        request("--edit-server -t 192.0.2.1:80 -r 10.1.0.11 -w 0"),
        Request::EditDest {
            service: tcp(1, 80),
            dest: dest(11, 80, 0, "dr")
        }
    );
}

#[test]
fn delete_server() {
    let want = |port| Request::DeleteDest {
        service: tcp(1, 80),
        addr: Ipv4Addr::new(10, 1, 0, 11).into(),
        port,
    };
    assert_eq!(request("-d -t 192.0.2.1:80 -r 10.1.0.11"), want(80));
    assert_eq!(request("-d -t 192.0.2.1:80 -r 10.1.0.11:8080"), want(8080));
    assert_eq!(
        request("--delete-server --tcp-service 192.0.2.1:80 --real-server 10.1.0.11:8080"),
        want(8080)
    );
}

#[test]
fn clear_zero_and_set() {
    assert_eq!(request("-C"), Request::Clear);
    assert_eq!(request("--clear"), Request::Clear);
    assert_eq!(request("-Z"), Request::Zero { service: None });
    assert_eq!(request("--zero"), Request::Zero { service: None });
    assert_eq!(
        request("-Z -t 192.0.2.1:80"),
        Request::Zero {
            service: Some(tcp(1, 80))
        }
    );
    assert_eq!(
        request("--set 900 60 300"),
        Request::SetTimeouts {
            tcp: 900,
            tcpfin: 60,
            udp: 300
        }
    );
    assert_eq!(
        request("--set 0 0 0"),
        Request::SetTimeouts {
            tcp: 0,
            tcpfin: 0,
            udp: 0
        }
    );
}

#[test]
fn listings() {
    assert_eq!(request("-L"), Request::List { service: None });
    assert_eq!(request("-l"), Request::List { service: None });
    assert_eq!(request("-L -n"), Request::List { service: None });
    assert_eq!(request("-Ln"), Request::List { service: None });
    assert_eq!(request("--list --numeric"), Request::List { service: None });
    assert_eq!(
        request("-L -n -t 192.0.2.1:80"),
        Request::List {
            service: Some(tcp(1, 80))
        }
    );
    assert_eq!(request("-L -n -c"), Request::Connections { from: None });
    assert_eq!(request("-Lnc"), Request::Connections { from: None });
    assert_eq!(
        request("-L --connection"),
        Request::Connections { from: None }
    );
    assert_eq!(request("-L --timeout"), Request::Timeouts);
    assert_eq!(request("--workers"), Request::Workers);
    assert_eq!(request("--workers --json -X"), Request::Workers);
    assert_eq!(request("--ports"), Request::Ports);
    assert_eq!(request("--ports --json --exact"), Request::Ports);
}

#[test]
fn no_arguments_lists_the_table_like_ipvsadm() {
    assert_eq!(
        cli::parse(&[]),
        Ok(Invocation::Request {
            request: Request::List { service: None },
            output: Output {
                numeric: true,
                ..Output::default()
            }
        })
    );
}

#[test]
fn listing_options_reach_the_output() {
    let o = output("-L -n --stats --exact --json --nosort");
    assert!(o.numeric && o.stats && o.exact && o.json && o.nosort);
    assert!(!o.rate && !o.connections && !o.timeout);
    let o = output("-L --rate");
    assert!(o.rate && !o.stats && !o.numeric);
    assert!(output("-L -c").connections);
    assert!(output("-L --timeout --json").timeout);
    assert_eq!(output("-L --sort"), Output::default());
}

#[test]
fn save_restore_help_version() {
    assert_eq!(
        parse("-S"),
        Ok(Invocation::Save {
            output: Output::default()
        })
    );
    assert_eq!(
        parse("--save -n"),
        Ok(Invocation::Save {
            output: Output {
                numeric: true,
                ..Output::default()
            }
        })
    );
    assert_eq!(parse("-R"), Ok(Invocation::Restore));
    assert_eq!(parse("--restore"), Ok(Invocation::Restore));
    assert_eq!(parse("-h"), Ok(Invocation::Help));
    assert_eq!(parse("--help"), Ok(Invocation::Help));
    assert_eq!(parse("-h -A -t 1"), Ok(Invocation::Help));
    assert_eq!(parse("-v"), Ok(Invocation::Version));
    assert_eq!(parse("--version"), Ok(Invocation::Version));
    assert!(cli::usage().contains("rvsadm -A|E"));
    assert!(cli::version().starts_with("rvsadm v"));
}

#[test]
fn log_level_sends_the_filter() {
    assert_eq!(
        request("--log-level info,control=debug"),
        Request::LogLevel {
            filter: "info,control=debug".into()
        }
    );
    assert_eq!(error("--log-level"), "--log-level: missing argument");
    assert_eq!(
        error("--log-level debug -t 192.0.2.1:80"),
        "Illegal 'service-address' option with the 'log-level' command"
    );
}

#[test]
fn reload_sends_an_absolute_path() {
    assert_eq!(
        request("--reload /etc/rvs/rvsd.toml"),
        Request::Reload {
            path: "/etc/rvs/rvsd.toml".into()
        }
    );
    let here = std::env::current_dir().unwrap().join("rvsd.toml");
    assert_eq!(
        request("--reload rvsd.toml"),
        Request::Reload {
            path: here.to_string_lossy().into_owned()
        }
    );
    assert_eq!(error("--reload"), "--reload: missing argument");
    assert_eq!(
        error("--reload /x -n"),
        "Illegal 'numeric' option with the 'reload' command"
    );
}

#[test]
fn address_and_port_errors_are_ipvsadms() {
    for line in [
        "-A -t 192.0.2.1:http",
        "-A -t www.example.com:80",
        "-A -t 192.0.2.256:80",
        "-A -t 192.0.2.1:65536",
        "-A -t 192.0.2.1:-1",
        "-A -t 192.0.2.1:",
        "-A -t 80",
        "-A -u 10.1:53",
    ] {
        assert_eq!(
            error(line),
            "illegal virtual server address[:port] specified",
            "{line}"
        );
    }
    for line in [
        "-a -t 192.0.2.1:80 -r 10.1.0.300",
        "-a -t 192.0.2.1:80 -r rs1.example.com",
        "-a -t 192.0.2.1:80 -r 10.1.0.11:99999",
        "-d -t 192.0.2.1:80 -r 8080",
    ] {
        assert_eq!(
            error(line),
            "illegal real server address[:port] specified",
            "{line}"
        );
    }
}

#[test]
fn zero_port_needs_persistence() {
    assert_eq!(
        error("-A -t 192.0.2.1"),
        "Zero port specified for non-persistent service"
    );
    assert_eq!(
        error("-E -u 192.0.2.1:0 -s rr"),
        "Zero port specified for non-persistent service"
    );
}

#[test]
fn weight_errors() {
    for line in [
        "-a -t 192.0.2.1:80 -r 10.1.0.11 -w 65536",
        "-a -t 192.0.2.1:80 -r 10.1.0.11 -w -1",
        "-a -t 192.0.2.1:80 -r 10.1.0.11 -w heavy",
        "-e -t 192.0.2.1:80 -r 10.1.0.11 --weight=",
    ] {
        assert_eq!(error(line), "illegal weight specified", "{line}");
    }
}

#[test]
fn timeout_errors() {
    assert_eq!(
        error("-A -t 192.0.2.1:80 -p 0"),
        "invalid timeout value `0' specified"
    );
    assert_eq!(
        error("-A -t 192.0.2.1:80 -p 2678401"),
        "invalid timeout value `2678401' specified"
    );
    assert_eq!(
        error("-A -t 192.0.2.1:80 -p10m"),
        "invalid timeout value `10m' specified"
    );
    assert_eq!(
        error("--set 900 60"),
        "--set option requires 3 timeout values"
    );
    assert_eq!(error("--set"), "--set option requires 3 timeout values");
    assert_eq!(
        error("--set 900 sixty 300"),
        "invalid timeout value `sixty' specified"
    );
    assert_eq!(error("--set 900 60 300 5"), "unexpected argument 5");
    assert_eq!(
        request("--set 2678400 0 1"),
        Request::SetTimeouts {
            tcp: 2_678_400,
            tcpfin: 0,
            udp: 1
        }
    );
}

#[test]
fn command_errors() {
    assert_eq!(
        error("-A -a -t 192.0.2.1:80"),
        "multiple commands specified"
    );
    assert_eq!(error("-L -S"), "multiple commands specified");
    assert_eq!(error("-L -h"), "multiple commands specified");
    assert_eq!(
        error("-n"),
        "Try `rvsadm -h' or 'rvsadm --help' for more information."
    );
    assert_eq!(
        error("-t 192.0.2.1:80"),
        "Try `rvsadm -h' or 'rvsadm --help' for more information."
    );
    assert_eq!(error("-L stray"), "unexpected argument stray");
    assert_eq!(error("-C -- -x"), "unexpected argument -x");
}

#[test]
fn option_table_errors_are_ipvsadms() {
    let cases = [
        ("-A", "You need to supply the 'service-address' option for the 'add-service' command"),
        ("-a -t 192.0.2.1:80", "You need to supply the 'real-server' option for the 'add-server' command"),
        ("-d -r 10.1.0.11", "You need to supply the 'service-address' option for the 'delete-server' command"),
        ("-A -t 192.0.2.1:80 -w 3", "Illegal 'weight' option with the 'add-service' command"),
        ("-A -t 192.0.2.1:80 -n", "Illegal 'numeric' option with the 'add-service' command"),
        ("-A -t 192.0.2.1:80 -m", "Illegal 'forwarding-method' option with the 'add-service' command"),
        ("-D -t 192.0.2.1:80 -s rr", "Illegal 'scheduler' option with the 'delete-service' command"),
        ("-a -t 192.0.2.1:80 -r 10.1.0.11 -s rr", "Illegal 'scheduler' option with the 'add-server' command"),
        ("-d -t 192.0.2.1:80 -r 10.1.0.11 -w 1", "Illegal 'weight' option with the 'delete-server' command"),
        ("-d -t 192.0.2.1:80 -r 10.1.0.11 -m", "Illegal 'forwarding-method' option with the 'delete-server' command"),
        ("-C -t 192.0.2.1:80", "Illegal 'service-address' option with the 'flush' command"),
        ("-L -s rr", "Illegal 'scheduler' option with the 'list' command"),
        ("-S -c", "Illegal 'connection' option with the 'save' command"),
        ("-S --json", "Illegal 'json' option with the 'save' command"),
        ("-Z -n", "Illegal 'numeric' option with the 'zero' command"),
        ("--set 1 2 3 -n", "Illegal 'numeric' option with the 'set' command"),
        ("-R -n", "Illegal 'numeric' option with the 'restore' command"),
        ("--workers -c", "Illegal 'connection' option with the 'workers' command"),
        ("--ports -c", "Illegal 'connection' option with the 'ports' command"),
        ("-L -c -t 192.0.2.1:80", "The option 'service-address' conflicts with the 'connection' option in the 'list' command"),
        ("-L -c --timeout", "The option 'timeout' conflicts with the 'connection' option in the 'list' command"),
        ("-L -t 192.0.2.1:80 --timeout", "The option 'timeout' conflicts with the 'service-address' option in the 'list' command"),
        ("-L -c --stats", "options conflicts in the list command"),
        ("-L --timeout --rate", "options conflicts in the list command"),
    ];
    for (line, want) in cases {
        assert_eq!(error(line), want, "{line}");
    }
}

#[test]
fn repeated_options_are_refused() {
    assert_eq!(
        error("-a -t 192.0.2.1:80 -r 10.1.0.11 -g -m"),
        "multiple 'forwarding-method' options specified"
    );
    assert_eq!(
        error("-a -t 192.0.2.1:80 -r 10.1.0.11 --fullnat -i"),
        "multiple 'forwarding-method' options specified"
    );
    assert_eq!(
        error("-A -t 192.0.2.1:80 -u 192.0.2.1:53"),
        "multiple 'service-address' options specified"
    );
    assert_eq!(
        error("-a -t 192.0.2.1:80 -r 10.1.0.11 -w 1 -w 2"),
        "multiple 'weight' options specified"
    );
    assert_eq!(error("-L -n -n"), "multiple 'numeric' options specified");
}

#[test]
fn synproxy_is_dpvs_dash_j() {
    for (line, on) in [
        ("-A -t 192.0.2.1:80 -s rr -j enable", true),
        ("-A -t 192.0.2.1:80 -s rr --synproxy=disable", false),
        ("-E -t 192.0.2.1:80 -s rr -j enable", true),
        // An IPv6 VIP takes it too (NAT66 and FullNAT66 dests).
        ("-A -t [2001:db8::10]:80 -s rr --synproxy=enable", true),
        ("-E -t [2001:db8::10]:80 -s rr -j disable", false),
    ] {
        let (service, synproxy) = match request(line) {
            Request::AddService {
                service, synproxy, ..
            }
            | Request::EditService {
                service, synproxy, ..
            } => (service, synproxy),
            other => panic!("{line}: {other:?}"),
        };
        assert_eq!(synproxy, on, "{line}");
        assert_eq!(service.vip.is_ipv6(), line.contains('['), "{line}");
    }
    assert_eq!(
        error("-A -t 192.0.2.1:80 -j maybe"),
        "illegal synproxy value `maybe': use -j enable or -j disable"
    );
    assert_eq!(error("-A -t 192.0.2.1:80 -j"), "-j: missing argument");
    assert!(error("-a -t 192.0.2.1:80 -r 10.1.0.11 -j enable").contains("synproxy"));
    assert!(error("-L -j enable").contains("synproxy"));
}

#[test]
fn proxy_protocol_is_dpvs_word() {
    for (line, want) in [
        ("-A -t 192.0.2.1:80 -s rr --proxy-protocol v2", Some("v2")),
        ("-A -t 192.0.2.1:80 --proxy-protocol=v1", Some("v1")),
        ("-E -t 192.0.2.1:80 -s rr --proxy-protocol disable", None),
        ("-E -t 192.0.2.1:80 -s rr", None),
    ] {
        let got = match request(line) {
            Request::AddService { proxy_protocol, .. }
            | Request::EditService { proxy_protocol, .. } => proxy_protocol,
            other => panic!("{line}: {other:?}"),
        };
        assert_eq!(got.as_deref(), want, "{line}");
    }
    assert_eq!(
        error("-A -t 192.0.2.1:80 --proxy-protocol v3"),
        "illegal proxy-protocol value `v3': use --proxy-protocol v1, v2 or disable"
    );
    assert!(error("-a -t 192.0.2.1:80 -r 10.1.0.11 --proxy-protocol v1").contains("proxy-protocol"));
    assert!(error("-L --proxy-protocol v1").contains("proxy-protocol"));
}

#[test]
fn toa_is_a_service_flag() {
    for (line, want) in [
        ("-A -t 192.0.2.1:80 -s rr --toa", true),
        ("-E -t 192.0.2.1:80 -s rr --toa", true),
        ("-E -t 192.0.2.1:80 -s rr", false),
    ] {
        let got = match request(line) {
            Request::AddService { toa, .. } | Request::EditService { toa, .. } => toa,
            other => panic!("{line}: {other:?}"),
        };
        assert_eq!(got, want, "{line}");
    }
    assert!(error("-a -t 192.0.2.1:80 -r 10.1.0.11 --toa").contains("toa"));
    assert!(error("-A -t 192.0.2.1:80 --toa --toa").contains("toa"));
}

#[test]
fn option_syntax_errors_are_popts() {
    assert_eq!(error("-A -t"), "-t: missing argument");
    assert_eq!(error("-a -t 192.0.2.1:80 -r"), "-r: missing argument");
    assert_eq!(error("-L --bogus"), "--bogus: unknown option");
    assert_eq!(error("-Lk"), "-k: unknown option");
    assert_eq!(
        error("-L --numeric=yes"),
        "--numeric: option does not take an argument"
    );
    assert_eq!(error("-L -q"), "-q: unknown option");
}

#[test]
fn ipvsadm_options_rvs_lacks_are_refused_by_name() {
    for (line, opt) in [
        ("-A -f 1", "-f"),
        ("-A -t 192.0.2.1:80 -p 60 -M 255.255.255.0", "-M"),
        ("-a -t 192.0.2.1:80 -r 10.1.0.11 -x 100", "-x"),
        (
            "-a -t 192.0.2.1:80 -r 10.1.0.11 --l-threshold 10",
            "--l-threshold",
        ),
        ("-A -u 192.0.2.1:53 -o", "-o"),
        ("-L --thresholds", "--thresholds"),
        ("-A -t 192.0.2.1:80 -b sh-port", "-b"),
        (
            "-a -t 192.0.2.1:80 -r 10.1.0.11 -i --tun-type gue",
            "--tun-type",
        ),
    ] {
        assert_eq!(
            error(line),
            format!("{opt}: not supported by rvs"),
            "{line}"
        );
    }
}

#[test]
fn sync_daemon_commands_speak_ipvsadm() {
    assert_eq!(
        request("--start-daemon master --mcast-interface rvslan --syncid 5"),
        Request::StartDaemon {
            role: DaemonRole::Master,
            interface: Some("rvslan".into()),
            sync_id: Some(5),
            maxlen: None,
            group: None,
            port: None,
            ttl: None,
            peers: vec![],
            refresh_secs: None,
        }
    );
    assert_eq!(
        request(
            "--start-daemon backup --sync-peer 10.9.0.2 --sync-peer 10.9.0.3:9000 \
             --mcast-port 9001 --sync-maxlen 1400 --mcast-group 239.1.2.3 --mcast-ttl 2 \
             --sync-refresh 0"
        ),
        Request::StartDaemon {
            role: DaemonRole::Backup,
            interface: None,
            sync_id: None,
            maxlen: Some(1400),
            group: Some(Ipv4Addr::new(239, 1, 2, 3)),
            port: Some(9001),
            ttl: Some(2),
            peers: vec![
                "10.9.0.2:9001".parse().unwrap(),
                "10.9.0.3:9000".parse().unwrap()
            ],
            refresh_secs: Some(0),
        }
    );
    assert_eq!(
        request("--stop-daemon backup"),
        Request::StopDaemon {
            role: DaemonRole::Backup
        }
    );
    assert_eq!(request("-L --daemon"), Request::Daemons);
    assert_eq!(request("-L -n --daemon"), Request::Daemons);
    assert!(output("-L --daemon --json").json);
    for (line, msg) in [
        (
            "--start-daemon primary",
            "illegal start-daemon parameter `primary': use master or backup",
        ),
        (
            "--stop-daemon all",
            "illegal stop-daemon parameter `all': use master or backup",
        ),
        (
            "--start-daemon master --syncid 256",
            "illegal --syncid value `256': 0 to 255",
        ),
        (
            "--start-daemon master --mcast-group 10.0.0.1",
            "illegal --mcast-group value `10.0.0.1': an IPv4 multicast group",
        ),
        (
            "--start-daemon master --sync-peer 224.0.0.81",
            "illegal --sync-peer value `224.0.0.81': a unicast IPv4 address[:port]",
        ),
        (
            "--start-daemon master --sync-maxlen 64",
            "illegal --sync-maxlen value `64': 128 to 65507 bytes",
        ),
        (
            "--start-daemon master --syncid 1 --syncid 2",
            "multiple 'syncid' options specified",
        ),
        (
            "-L --syncid 3",
            "the '--syncid' option goes with the '--start-daemon' command only",
        ),
        (
            "--stop-daemon master --mcast-interface eth0",
            "the '--mcast-interface' option goes with the '--start-daemon' command only",
        ),
        (
            "-Z --daemon",
            "the '--daemon' option goes with the '-L' command only",
        ),
        ("-L -c --daemon", "options conflicts in the list command"),
        ("--start-daemon", "--start-daemon: missing argument"),
    ] {
        assert_eq!(error(line), msg, "{line}");
    }
}

#[test]
fn icmp_has_no_ports() {
    let msg = "ICMP services and their real servers have no port";
    assert_eq!(error("-A --icmp 192.0.2.9:7"), msg);
    assert_eq!(error("-a --icmp 192.0.2.9 -r 10.1.0.31:80 -m"), msg);
    assert!(parse("-A --icmp 192.0.2.9:0").is_ok());
}

#[test]
fn exit_codes_follow_ipvsadm() {
    assert_eq!(CliError::NoCommand.exit_code(), 255);
    assert_eq!(CliError::UnknownOption("-j".into()).exit_code(), 255);
    assert_eq!(CliError::MissingArgument("-t".into()).exit_code(), 255);
    assert_eq!(CliError::IllegalWeight.exit_code(), 2);
    assert_eq!(CliError::ZeroPort.exit_code(), 2);
    assert_eq!(CliError::MultipleCommands.exit_code(), 2);
    assert!(CliError::UnknownOption("-j".into()).wants_hint());
    assert!(!CliError::IllegalWeight.wants_hint());
}

#[test]
fn socket_option_is_taken_out_anywhere() {
    let (socket, rest) = cli::split_socket(&words("-L --socket /tmp/s -n")).unwrap();
    assert_eq!(socket.as_deref(), Some("/tmp/s"));
    assert_eq!(rest, words("-L -n"));
    let (socket, rest) = cli::split_socket(&words("--socket=/tmp/t -C")).unwrap();
    assert_eq!(socket.as_deref(), Some("/tmp/t"));
    assert_eq!(rest, words("-C"));
    let (socket, rest) = cli::split_socket(&words("-L")).unwrap();
    assert_eq!(socket, None);
    assert_eq!(rest, words("-L"));
    assert_eq!(
        cli::split_socket(&words("-L --socket")),
        Err(CliError::MissingArgument("--socket".into()))
    );
}

#[test]
fn rules_are_read_back_into_one_batch() {
    let input = "\
# saved by rvsadm -S
-A -t 192.0.2.1:80 -s wrr
-a -t 192.0.2.1:80 -r 10.1.0.11:8080 -m -w 3   # a comment after a rule

ipvsadm -A -u 192.0.2.2:53 -s rr -p 300
rvsadm -a -u 192.0.2.2:53 -r 10.1.0.21:53 -g -w 1
   -C
--set 900 60 300
";
    assert_eq!(
        cli::parse_rules(input),
        Ok(Request::Batch {
            requests: vec![
                Request::AddService {
                    service: tcp(1, 80),
                    scheduler: "wrr".into(),
                    persistence: None,
                    synproxy: false,
                    proxy_protocol: None,
                    toa: false
                },
                Request::AddDest {
                    service: tcp(1, 80),
                    dest: dest(11, 8080, 3, "nat")
                },
                Request::AddService {
                    service: udp(2, 53),
                    scheduler: "rr".into(),
                    persistence: Some(300),
                    synproxy: false,
                    proxy_protocol: None,
                    toa: false
                },
                Request::AddDest {
                    service: udp(2, 53),
                    dest: dest(21, 53, 1, "dr")
                },
                Request::Clear,
                Request::SetTimeouts {
                    tcp: 900,
                    tcpfin: 60,
                    udp: 300
                },
            ]
        })
    );
    assert_eq!(
        cli::parse_rules(""),
        Ok(Request::Batch { requests: vec![] })
    );
}

#[test]
fn a_bad_rule_is_named_by_its_line() {
    let input = "-A -t 192.0.2.1:80 -s wrr\n\n-a -t 192.0.2.1:80 -r 10.1.0.11 -w 70000\n";
    let e = cli::parse_rules(input).unwrap_err();
    assert_eq!(
        e,
        RestoreError::Line {
            line: 3,
            source: CliError::IllegalWeight
        }
    );
    assert_eq!(e.to_string(), "line 3: illegal weight specified");
    for (input, line) in [
        ("-L -n", 1),
        ("-C\n-S", 2),
        ("-R", 1),
        ("-h", 1),
        ("--reload /x", 1),
        ("--workers", 1),
    ] {
        assert_eq!(
            cli::parse_rules(input),
            Err(RestoreError::NotAChange { line }),
            "{input}"
        );
    }
}

#[test]
fn arbitrary_words_never_panic() {
    let pieces = [
        "-",
        "--",
        "-A",
        "-a",
        "-t",
        "-u",
        "--icmp",
        "-r",
        "-p",
        "-w",
        "-s",
        "--set",
        "-L",
        "-c",
        "-Ztp",
        "--p=",
        "--=",
        "=",
        "192.0.2.1:80",
        ":",
        "::",
        "1.2.3.4:",
        "é",
        "-é",
        "--é",
        "-pé",
        "99999999999999999999",
        "-n",
        "--reload",
        "",
        " ",
        "-Lnc",
        "-X",
    ];
    // Every sequence of up to three pieces.
    for a in pieces {
        for b in pieces {
            for c in pieces {
                let _ = cli::parse(&[a.to_owned(), b.to_owned(), c.to_owned()]);
                let _ = cli::parse_rules(&format!("{a} {b}\n{c}"));
            }
        }
    }
}

/// `2001:db8::<last>`.
fn v6(last: u16) -> IpAddr {
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, last).into()
}

/// `2001:db8:1::<last>`, a real server.
fn rs6(last: u16) -> IpAddr {
    Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, last).into()
}

fn tcp6(port: u16) -> SvcKey {
    SvcKey {
        proto: ProtoName::Tcp,
        vip: v6(0x10),
        port,
    }
}

fn dest6(last: u16, port: u16, weight: u32, mode: &str) -> DestSpec {
    DestSpec {
        addr: rs6(last),
        port,
        weight,
        mode: mode.to_owned(),
    }
}

fn add_service(service: SvcKey, scheduler: &str, persistence: Option<u32>) -> Request {
    Request::AddService {
        service,
        scheduler: scheduler.into(),
        persistence,
        synproxy: false,
        proxy_protocol: None,
        toa: false,
    }
}

#[test]
fn ipv6_services_are_given_in_brackets() {
    let want = add_service(tcp6(80), "rr", None);
    for line in [
        "-A -t [2001:db8::10]:80 -s rr",
        "-At [2001:db8::10]:80 -srr",
        "--add-service --tcp-service [2001:db8::10]:80 --scheduler rr",
        "--add-service --tcp-service=[2001:db8::10]:80 --scheduler=rr",
        "-A -t [2001:db8:0:0:0:0:0:10]:80 -s rr",
    ] {
        assert_eq!(request(line), want, "{line}");
    }
    assert_eq!(
        request("-A -u [2001:db8::10]:53 -s rr -p 60"),
        add_service(
            SvcKey {
                proto: ProtoName::Udp,
                ..tcp6(53)
            },
            "rr",
            Some(60)
        )
    );
    // Without a port (bracketed or bare): port 0, which only a persistent service may have.
    for line in ["-A -t [2001:db8::10] -p 60", "-A -t 2001:db8::10 -p 60"] {
        assert_eq!(
            request(line),
            add_service(tcp6(0), "wlc", Some(60)),
            "{line}"
        );
    }
    for line in ["-A -t [2001:db8::10]", "-A -t 2001:db8::10"] {
        assert_eq!(
            error(line),
            "Zero port specified for non-persistent service",
            "{line}"
        );
    }
    assert_eq!(
        request("-D -t [2001:db8::10]:80"),
        Request::DeleteService { service: tcp6(80) }
    );
    assert_eq!(
        request("-L -n -t [2001:db8::10]:80"),
        Request::List {
            service: Some(tcp6(80))
        }
    );
    assert_eq!(
        request("-Z -t [2001:db8::10]:80"),
        Request::Zero {
            service: Some(tcp6(80))
        }
    );
}

#[test]
fn ipv6_icmp_services_have_no_port_either() {
    let icmp = SvcKey {
        proto: ProtoName::Icmp,
        vip: v6(9),
        port: 0,
    };
    for line in [
        "-A --icmp [2001:db8::9] -s rr",
        "-A --icmp 2001:db8::9 -s rr",
        "-A --icmp [2001:db8::9]:0 -s rr",
    ] {
        assert_eq!(request(line), add_service(icmp, "rr", None), "{line}");
    }
    assert_eq!(
        request("-a --icmp [2001:db8::9] -r [2001:db8:1::31]"),
        Request::AddDest {
            service: icmp,
            dest: dest6(0x31, 0, 1, "dr")
        }
    );
    let msg = "ICMP services and their real servers have no port";
    assert_eq!(error("-A --icmp [2001:db8::9]:7"), msg);
    assert_eq!(
        error("-a --icmp [2001:db8::9] -r [2001:db8:1::31]:80 -m"),
        msg
    );
}

#[test]
fn ipv6_real_servers_take_ports_as_ipv4_ones_do() {
    let add = |dest| Request::AddDest {
        service: tcp6(80),
        dest,
    };
    assert_eq!(
        request("-a -t [2001:db8::10]:80 -r [2001:db8:1::11]:8080 -m -w 2"),
        add(dest6(0x11, 8080, 2, "nat"))
    );
    assert_eq!(
        request("-a -t [2001:db8::10]:80 -r [2001:db8:1::11]:8080 --fullnat"),
        add(dest6(0x11, 8080, 1, "fullnat"))
    );
    // No port: the service's, bracketed or bare.
    for line in [
        "-a -t [2001:db8::10]:80 -r [2001:db8:1::11]",
        "-a -t [2001:db8::10]:80 -r 2001:db8:1::11",
        "-a -t [2001:db8::10]:80 -r [2001:db8:1::11]:8080",
        "-a -t [2001:db8::10]:80 -r [2001:db8:1::11]:8080 -g",
    ] {
        assert_eq!(request(line), add(dest6(0x11, 80, 1, "dr")), "{line}");
    }
    assert_eq!(
        request("-a -t [2001:db8::10]:80 -r [2001:db8:1::11]:8080 -i"),
        add(dest6(0x11, 80, 1, "tun"))
    );
    assert_eq!(
        request("-e -t [2001:db8::10]:80 -r [2001:db8:1::11]:8080 -m -w 0"),
        Request::EditDest {
            service: tcp6(80),
            dest: dest6(0x11, 8080, 0, "nat")
        }
    );
    let delete = |port| Request::DeleteDest {
        service: tcp6(80),
        addr: rs6(0x11),
        port,
    };
    assert_eq!(
        request("-d -t [2001:db8::10]:80 -r [2001:db8:1::11]:8080"),
        delete(8080)
    );
    assert_eq!(
        request("-d -t [2001:db8::10]:80 -r [2001:db8:1::11]"),
        delete(80)
    );
}

#[test]
fn ipv6_address_errors_are_ipvsadms() {
    for word in [
        "[2001:db8::10",
        "[2001:db8::10]80",
        "[2001:db8::10]:",
        "[2001:db8::10]:65536",
        "[2001:db8::10]:-1",
        "[2001:db8::10]:http",
        "[]:80",
        "[]",
        "[10.0.0.1]:80",
        "[10.0.0.1]",
        "2001:db8::10]:80",
        "[2001:db8::g]:80",
        "[2001:db8::10%eth0]:80",
    ] {
        assert_eq!(
            error(&format!("-A -t {word}")),
            "illegal virtual server address[:port] specified",
            "{word}"
        );
        assert_eq!(
            error(&format!("-a -t [2001:db8::10]:80 -r {word}")),
            "illegal real server address[:port] specified",
            "{word}"
        );
    }
}

#[test]
fn a_bare_ipv6_address_that_reads_as_address_and_port_is_refused() {
    assert_eq!(
        error("-A -t 2001:db8::1:80"),
        "illegal virtual server address[:port] specified: `2001:db8::1:80' is ambiguous; \
         write [2001:db8::1]:80 for a port, or [2001:db8::1:80] for the address"
    );
    assert_eq!(
        error("-a -t [2001:db8::10]:80 -r 2001:db8:1::11:8080"),
        "illegal real server address[:port] specified: `2001:db8:1::11:8080' is ambiguous; \
         write [2001:db8:1::11]:8080 for a port, or [2001:db8:1::11:8080] for the address"
    );
    assert_eq!(
        error("-a -u [2001:db8::10]:53 -r ::1:53"),
        "illegal real server address[:port] specified: `::1:53' is ambiguous; \
         write [::1]:53 for a port, or [::1:53] for the address"
    );
    // The bracketed forms say which was meant.
    assert_eq!(
        request("-A -t [2001:db8::1]:80 -s rr"),
        add_service(
            SvcKey {
                vip: v6(1),
                ..tcp6(80)
            },
            "rr",
            None
        )
    );
    assert_eq!(
        request("-A -t [2001:db8::1:80] -p 60 -s rr"),
        add_service(
            SvcKey {
                vip: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 1, 0x80).into(),
                ..tcp6(0)
            },
            "rr",
            Some(60)
        )
    );
    // Not ambiguous: a hex last group, or no address before it.
    assert!(parse("-A -t 2001:db8::1:ab -p").is_ok());
    assert!(parse("-A -t 2001:db8::80 -p").is_ok());
    assert!(matches!(
        parse("-A -t 2001:db8::1:80"),
        Err(CliError::AmbiguousAddress { .. })
    ));
    assert_eq!(
        parse("-A -t 2001:db8::1:80").map_err(|e| e.exit_code()),
        Err(2)
    );
}

#[test]
fn a_dest_of_the_other_family_is_refused_before_sending() {
    assert_eq!(
        error("-a -t [2001:db8::10]:80 -r 10.1.0.11:80"),
        "Address family of destination 10.1.0.11 differs from the service's VIP 2001:db8::10"
    );
    assert_eq!(
        error("-a -t 192.0.2.1:80 -r [2001:db8:1::11]:80 -m"),
        "Address family of destination 2001:db8:1::11 differs from the service's VIP 192.0.2.1"
    );
    assert_eq!(
        error("-e -u 192.0.2.1:53 -r 2001:db8:1::11"),
        "Address family of destination 2001:db8:1::11 differs from the service's VIP 192.0.2.1"
    );
    assert_eq!(
        error("-e -t [2001:db8::10]:80 -r 10.1.0.11 -m"),
        "Address family of destination 10.1.0.11 differs from the service's VIP 2001:db8::10"
    );
    assert_eq!(
        error("-a --icmp 192.0.2.9 -r [2001:db8:1::31]"),
        "Address family of destination 2001:db8:1::31 differs from the service's VIP 192.0.2.9"
    );
    let e = parse("-a -t [2001:db8::10]:80 -r 10.1.0.11").unwrap_err();
    assert_eq!(
        e,
        CliError::FamilyMismatch {
            vip: v6(0x10),
            dest: Ipv4Addr::new(10, 1, 0, 11).into()
        }
    );
    assert_eq!(e.exit_code(), 2);
    assert!(!e.wants_hint());
}

#[test]
fn an_ipv6_service_takes_ipv4_fullnat_dests_nat64() {
    let svc = SvcKey {
        proto: ProtoName::Tcp,
        vip: "2001:db8::10".parse::<Ipv6Addr>().unwrap().into(),
        port: 80,
    };
    assert_eq!(
        request("-a -t [2001:db8::10]:80 -r 10.1.0.11:8080 --fullnat -w 2"),
        Request::AddDest {
            service: svc,
            dest: dest(11, 8080, 2, "fullnat")
        }
    );
    assert_eq!(
        request("-e -t [2001:db8::10]:80 -r 10.1.0.11:8080 --fullnat -w 3"),
        Request::EditDest {
            service: svc,
            dest: dest(11, 8080, 3, "fullnat")
        }
    );
    assert!(matches!(
        request("-d -t [2001:db8::10]:80 -r 10.1.0.11:8080"),
        Request::DeleteDest { .. }
    ));
    // Any other mode keeps the families apart, and an IPv4 service takes no IPv6 dest.
    for mode in ["-g", "-m", "-i"] {
        assert_eq!(
            error(&format!("-a -t [2001:db8::10]:80 -r 10.1.0.11 {mode}")),
            "Address family of destination 10.1.0.11 differs from the service's VIP 2001:db8::10"
        );
    }
    assert_eq!(
        error("-a -t 192.0.2.1:80 -r [2001:db8:1::11]:80 --fullnat"),
        "Address family of destination 2001:db8:1::11 differs from the service's VIP 192.0.2.1"
    );
}

#[test]
fn dash_6_is_refused_with_how_rvs_names_ipv6_services() {
    let msg = |opt: &str| {
        format!(
            "{opt}: not supported by rvs: IPv6 services are given by their bracketed address \
             (-t [2001:db8::10]:80); -6 only applies to fwmark services (-f), which rvs does \
             not have"
        )
    };
    assert_eq!(error("-A -6 -t [2001:db8::10]:80"), msg("-6"));
    assert_eq!(error("-A -t [2001:db8::10]:80 --ipv6"), msg("--ipv6"));
    assert_eq!(error("-L -n6"), msg("-6"));
    let e = parse("-A -6 -t [2001:db8::10]:80").unwrap_err();
    assert_eq!(e, CliError::Ipv6Fwmark("-6".into()));
    assert_eq!(e.exit_code(), 2);
    assert!(e.wants_hint());
}

#[test]
fn help_shows_the_bracketed_ipv6_form() {
    let usage = cli::usage();
    assert!(
        usage.contains(
            "  --tcp-service  -t service-address   service-address is IPv4[:port] or [IPv6][:port]\n"
        ),
        "{usage}"
    );
    assert!(usage.contains("-t [2001:db8::10]:80)"), "{usage}");
    assert!(
        usage.contains(
            "  --real-server  -r server-address    server-address is IPv4[:port] or [IPv6][:port],"
        ),
        "{usage}"
    );
    assert!(
        usage.contains("service-address is IPv4 or [IPv6]\n"),
        "{usage}"
    );
}

#[test]
fn ipv6_rules_are_read_back() {
    let input = "\
-A -t [2001:db8::10]:80 -s rr
-a -t [2001:db8::10]:80 -r [2001:db8:1::11]:80 -g -w 1
-a -t [2001:db8::10]:80 -r [2001:db8:1::12]:8080 -m -w 3
-A --icmp [2001:db8::9] -s rr
-a --icmp [2001:db8::9] -r [2001:db8:1::31] -g -w 1
";
    let icmp = SvcKey {
        proto: ProtoName::Icmp,
        vip: v6(9),
        port: 0,
    };
    assert_eq!(
        cli::parse_rules(input),
        Ok(Request::Batch {
            requests: vec![
                add_service(tcp6(80), "rr", None),
                Request::AddDest {
                    service: tcp6(80),
                    dest: dest6(0x11, 80, 1, "dr")
                },
                Request::AddDest {
                    service: tcp6(80),
                    dest: dest6(0x12, 8080, 3, "nat")
                },
                add_service(icmp, "rr", None),
                Request::AddDest {
                    service: icmp,
                    dest: dest6(0x31, 0, 1, "dr")
                },
            ]
        })
    );
    assert_eq!(
        cli::parse_rules("-A -t [2001:db8::10]:80 -s rr\n-a -t [2001:db8::10]:80 -r 10.1.0.1\n"),
        Err(RestoreError::Line {
            line: 2,
            source: CliError::FamilyMismatch {
                vip: v6(0x10),
                dest: Ipv4Addr::new(10, 1, 0, 1).into()
            }
        })
    );
}
