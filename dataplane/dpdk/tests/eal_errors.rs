//! EAL start-up errors are returned, never abort the process: use before init, arguments the
//! binding refuses, an option the EAL does not know, and init after a failed init.
//! One test function: the steps depend on each other, and the EAL is per process.

mod common;

use dpdk::port::Port;
use dpdk::{register_thread, DpdkError, Eal, Mempool};

#[test]
fn eal_start_up_errors_are_returned() {
    // Before init: clean errors, nothing crashes.
    assert!(!Eal::is_running());
    assert_eq!(Port::count(), 0);
    assert!(Port::ids().is_empty());
    assert!(matches!(
        Mempool::new("early", 1023, 0, Mempool::DEFAULT_DATA_ROOM, None),
        Err(DpdkError::NotInitialized { .. })
    ));
    assert!(matches!(
        Port::by_name("net_ring0"),
        Err(DpdkError::NotInitialized { .. })
    ));
    assert!(matches!(
        Port::open(0),
        Err(DpdkError::NotInitialized { .. })
    ));
    assert!(matches!(
        register_thread(),
        Err(DpdkError::NotInitialized { .. })
    ));

    // Arguments the binding refuses before DPDK sees them (these leave init possible).
    let e = Eal::init(&["--help"]).unwrap_err();
    assert!(matches!(e, DpdkError::InvalidArgument { .. }), "{e}");
    assert!(e.to_string().contains("exits the process"), "{e}");
    let e = Eal::init(&["--vdev", "net_ring0\0"]).unwrap_err();
    assert!(matches!(e, DpdkError::InvalidArgument { .. }), "{e}");

    // An option the EAL does not know: rte_eal_init fails with EINVAL.
    let e = Eal::init(&["--no-such-eal-option"]).unwrap_err();
    match &e {
        DpdkError::EalInit { errno, args, .. } => {
            assert_eq!(*errno, 22, "{e}");
            assert_eq!(args, &["--no-such-eal-option"]);
        }
        other => panic!("expected EalInit, got {other}"),
    }
    assert!(e.to_string().contains("rte_eal_init failed"), "{e}");
    assert!(!Eal::is_running());

    // DPDK cannot start again in this process: a later init says so instead of failing in
    // a confusing way (or crashing).
    let args = common::eal_args("eal-errors", &["net_ring0"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let e = Eal::init(&args).unwrap_err();
    assert!(matches!(e, DpdkError::CleanedUp), "{e}");
    assert!(e.to_string().contains("restart the process"), "{e}");
    assert!(matches!(
        Mempool::new("late", 1023, 0, Mempool::DEFAULT_DATA_ROOM, None),
        Err(DpdkError::NotInitialized { .. })
    ));
}
