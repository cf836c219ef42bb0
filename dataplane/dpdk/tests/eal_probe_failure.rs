//! A `--vdev` whose driver exists but whose probe fails (an interface that does not exist):
//! the EAL only logs it and reports success; `Eal::init` notices the missing port, shuts the
//! EAL down and returns `DeviceMissing`.

mod common;

use dpdk::{DpdkError, Eal, Mempool};

#[test]
fn failed_vdev_probe_is_an_error() {
    let args = common::eal_args(
        "eal-probe-failure",
        &["net_ring0", "net_af_packet0,iface=rvs-no-such-if"],
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let e = Eal::init(&args).unwrap_err();
    common::remove_runtime_dir("eal-probe-failure");
    match &e {
        DpdkError::DeviceMissing { name } => assert_eq!(name, "net_af_packet0"),
        other => panic!("expected DeviceMissing, got {other}"),
    }
    assert!(e.to_string().contains("did not appear"), "{e}");
    assert!(!Eal::is_running());
    assert!(matches!(Eal::init(&args), Err(DpdkError::CleanedUp)));
    assert!(matches!(
        Mempool::new("after", 1023, 0, Mempool::DEFAULT_DATA_ROOM, None),
        Err(DpdkError::NotInitialized { .. })
    ));
}
