//! The device abstraction: one worker's RX/TX queue pair on one port.
//!
//! Each worker owns one handle per port (its own queue), so nothing here is shared between
//! threads. Implementations: [`crate::mem::MemDevice`] (tests and benches) and, with the
//! DPDK layer, an mbuf-backed port queue.

use crate::buf::PacketBuf;
use crate::wire::EthernetAddress;
use arrayvec::ArrayVec;

/// Packets per RX/TX burst (DPDK's customary 32).
pub const BURST: usize = 32;

/// A burst of owned packets; lives on the stack or in a worker, never on the heap per packet.
pub type Burst<B> = ArrayVec<B, BURST>;

/// One worker's queue pair on one port.
pub trait Device {
    /// The packet buffer this device receives into and transmits from.
    type Buf: PacketBuf;

    /// Receives up to `out.remaining_capacity()` packets, appending them to `out`.
    fn rx_burst(&mut self, out: &mut Burst<Self::Buf>);

    /// Transmits packets from the front of `pkts`, removing the ones the device took.
    /// Returns how many were taken; the rest stay in `pkts` (the caller retries or drops them).
    fn tx_burst(&mut self, pkts: &mut Burst<Self::Buf>) -> usize;

    /// A fresh, empty buffer from this device's pool (for ARP and ICMP the director builds).
    fn alloc(&mut self) -> Option<Self::Buf>;

    /// The port's MAC address.
    fn mac(&self) -> EthernetAddress;
}
