//! Sans-IO connection tracking for rvs: one session table per worker.
//!
//! Nothing here reads a clock, touches a socket or spawns a thread: `now` comes in as an
//! argument, expired sessions come out as return values, timers are data.
//!
//! - [`key`]: flow keys (5-tuples), protocols and packet directions.
//! - [`tcp_state`]: the LVS TCP state machine as a const `[direction][event][state]` table.
//! - [`timeout`]: session states across protocols and their idle timeouts.
//! - [`wheel`]: the hashed timer wheel threaded through the session slab.
//! - [`table`]: the per-worker session table (slab, key index, timers).
//! - [`index`]: the table's key index, one cache line per bucket, with prefetch hints.
#![deny(unsafe_code)]

pub mod index;
pub mod key;
pub mod table;
pub mod tcp_state;
pub mod timeout;
pub mod wheel;

pub use key::{Dir, FlowKey, FlowKey6, Key, Proto};
pub use table::{
    Candidate, InsertError, KeyHash, Session, SessionId, SessionMut, Table, MAX_CAPACITY,
};
pub use tcp_state::{next_state, StateDir, TcpEvent, TcpState, IPVS_DEVIATIONS, TRANSITIONS};
pub use timeout::{SessionState, Timeouts};
pub use wheel::Wheel;
