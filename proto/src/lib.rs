//! rvs's control protocol, shared by rvsd's control server and rvsadm; std, serde and JSON only.
//!
//! - [`message`]: the requests (ipvsadm's commands), their envelope and the responses.
//! - [`frame`]: length-prefixed JSON frames, size limits and the strict request decoder.
//! - [`forward`]: forwarding-method names: aliases, ipvsadm's column, rvsadm's switches.

pub mod forward;
pub mod frame;
pub mod message;

pub use forward::ForwardName;
pub use frame::{
    decode_request, decode_response, encode, read_frame_bytes, write_body, write_frame, FrameError,
    MAX_FRAME,
};
pub use message::*;
