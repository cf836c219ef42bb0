//! A `--vdev` naming a driver that does not exist: the EAL refuses it while parsing and
//! `Eal::init` returns the error (ENODEV); the process carries on.

mod common;

use dpdk::{DpdkError, Eal};

#[test]
fn unknown_vdev_driver_is_an_error() {
    let args = common::eal_args("eal-unknown-driver", &["net_ring0", "net_nosuchdriver0"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let e = Eal::init(&args).unwrap_err();
    common::remove_runtime_dir("eal-unknown-driver");
    match &e {
        DpdkError::EalInit { errno, .. } => assert_eq!(*errno, 19, "{e}"),
        other => panic!("expected EalInit, got {other}"),
    }
    assert!(e.to_string().contains("--vdev"), "{e}");
    assert!(!Eal::is_running());
}
