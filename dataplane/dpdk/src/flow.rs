//! rte_flow rules that steer traffic to a queue in the NIC.
//!
//! rvs uses one shape: `ETH / IPV4 dst is A / TCP|UDP dst port (masked) → QUEUE q`, so the
//! replies of a FullNAT session (RS → LIP:lport) reach the worker that owns the LIP port
//! slice. Many drivers (net_ring, net_null, net_vhost, virtio, net_tap without the kernel's
//! multiq qdisc) have no rte_flow at all: they give [`DpdkError::Unsupported`], and the
//! daemon falls back to the software Toeplitz choice of ports or the redirect rings.

use crate::error::{self, libc_errno, DpdkError};
use crate::ffi;
use crate::port::{self, Port};
use core::ffi::CStr;
use core::net::Ipv4Addr;
use core::ptr::NonNull;

/// The L4 protocol a rule matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L4Proto {
    /// TCP (IP protocol 6).
    Tcp,
    /// UDP (IP protocol 17).
    Udp,
}

impl L4Proto {
    fn number(self) -> u8 {
        match self {
            L4Proto::Tcp => 6,
            L4Proto::Udp => 17,
        }
    }
}

/// A flow rule in a port; dropping it destroys the rule.
#[derive(Debug)]
pub struct Flow {
    port: u16,
    raw: NonNull<ffi::rte_flow>,
}

// Safety: the handle is an opaque pointer that DPDK only uses in rte_flow_destroy, which
// any thread may call (rte_flow serializes per port for drivers that need it).
unsafe impl Send for Flow {}

impl Flow {
    /// Steers IPv4 packets to `dst_ip` with L4 `proto` destination port matching
    /// `port_spec` under `port_mask` (e.g. spec 0x1000, mask 0xf000: ports 4096..8191) to
    /// RX queue `queue` of `port`. The rule is validated first, then created.
    ///
    /// # Errors
    /// [`DpdkError::Unsupported`] when the driver has no rte_flow (or not this shape);
    /// [`DpdkError::Flow`] with the driver's message when it refuses the rule.
    pub fn steer_ipv4_dst_port(
        port: &Port,
        dst_ip: Ipv4Addr,
        proto: L4Proto,
        port_spec: u16,
        port_mask: u16,
        queue: u16,
    ) -> Result<Flow, DpdkError> {
        let mut err = ffi::rte_flow_error {
            type_: 0,
            cause: core::ptr::null(),
            message: core::ptr::null(),
        };
        let mut rc = 0i32;
        // Safety: the Port handle proves the EAL runs and the id is valid; the shim builds
        // the pattern and actions on its stack and only writes rc and err, both valid.
        let raw = unsafe {
            ffi::rvs_flow_ipv4_dst_port(
                port.id(),
                u32::from(dst_ip).to_be(),
                proto.number(),
                port_spec,
                port_mask,
                queue,
                0,
                &mut rc,
                &mut err,
            )
        };
        if let Some(raw) = NonNull::new(raw) {
            port.add_flow();
            return Ok(Flow {
                port: port.id(),
                raw,
            });
        }
        let errno = if rc != 0 { rc.abs() } else { error::errno() };
        let msg = flow_message(&err, errno);
        let driver = port.info().map(|i| i.driver_name).unwrap_or_default();
        if errno == libc_errno::ENOSYS || errno == libc_errno::ENOTSUP {
            return Err(DpdkError::Unsupported {
                port: port.id(),
                driver,
                what: "rte_flow",
                detail: format!(
                    "{msg}; choose LIP ports by the software Toeplitz hash or use the \
                     redirect rings"
                ),
            });
        }
        Err(DpdkError::Flow {
            port: port.id(),
            driver,
            errno,
            msg,
        })
    }

    /// The port the rule is in.
    pub fn port(&self) -> u16 {
        self.port
    }
}

/// The driver's message, or DPDK's text for `errno`.
fn flow_message(err: &ffi::rte_flow_error, errno: i32) -> String {
    if err.message.is_null() {
        return error::strerror(errno);
    }
    // Safety: a non-NULL rte_flow_error.message is a NUL-terminated string from the driver
    // (usually static); it is copied out at once.
    let m = unsafe { CStr::from_ptr(err.message) }.to_string_lossy();
    let text = error::strerror(errno);
    if m == text {
        text
    } else {
        format!("{m} ({text})")
    }
}

impl Drop for Flow {
    fn drop(&mut self) {
        let mut err = ffi::rte_flow_error {
            type_: 0,
            cause: core::ptr::null(),
            message: core::ptr::null(),
        };
        // Safety: raw came from rte_flow_create on this port, which cannot have been closed
        // (closing needs every flow gone); it is destroyed exactly once, here.
        let rc = unsafe { ffi::rte_flow_destroy(self.port, self.raw.as_ptr(), &mut err) };
        if rc != 0 {
            tracing::warn!(
                port = self.port,
                error = %flow_message(&err, rc.abs()),
                "rte_flow_destroy failed"
            );
        }
        port::remove_flow(self.port);
    }
}
