//! Framing over the Unix stream socket: each message is a 4-byte big-endian length followed
//! by that many bytes of JSON. Messages longer than [`MAX_FRAME`] are refused before they are
//! read; a request must carry this build's [`VERSION`] and no field its operation lacks.

use crate::message::{Envelope, Request, Response, VERSION};
use serde::{Deserialize, Serialize};
use std::io::{self, Read, Write};

/// The largest message either side accepts, in bytes.
pub const MAX_FRAME: usize = 1 << 20;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer closed the connection or the socket failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The announced length is over [`MAX_FRAME`].
    #[error("message of {0} bytes is larger than the {MAX_FRAME}-byte limit")]
    TooLarge(usize),
    /// The bytes are not the expected JSON.
    #[error("malformed message: {0}")]
    Malformed(String),
}

/// Writes `msg` as one frame.
///
/// # Errors
/// I/O errors, or a message over [`MAX_FRAME`].
pub fn write_frame<T: Serialize>(w: &mut impl Write, msg: &T) -> Result<(), FrameError> {
    write_body(w, &encode(msg)?)
}

/// `msg` as a frame body, for [`write_body`].
///
/// # Errors
/// [`FrameError::TooLarge`] with the body's size if it is over [`MAX_FRAME`] (nothing is
/// written then: the caller can send something else instead).
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    let body = serde_json::to_vec(msg).map_err(|e| FrameError::Malformed(e.to_string()))?;
    if body.len() > MAX_FRAME {
        return Err(FrameError::TooLarge(body.len()));
    }
    Ok(body)
}

/// Writes a body from [`encode`] as one frame.
///
/// # Errors
/// I/O errors, or a body over [`MAX_FRAME`].
pub fn write_body(w: &mut impl Write, body: &[u8]) -> Result<(), FrameError> {
    if body.len() > MAX_FRAME {
        return Err(FrameError::TooLarge(body.len()));
    }
    w.write_all(&(body.len() as u32).to_be_bytes())?;
    w.write_all(body)?;
    w.flush()?;
    Ok(())
}

/// Reads one frame's bytes (refusing, before reading them, bodies over [`MAX_FRAME`]).
///
/// # Errors
/// I/O errors (including EOF) or an oversized length.
pub fn read_frame_bytes(r: &mut impl Read) -> Result<Vec<u8>, FrameError> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    Ok(body)
}

/// Decodes a request body, checking the version.
///
/// # Errors
/// [`FrameError::Malformed`] with a message that says what is wrong.
pub fn decode_request(body: &[u8]) -> Result<Request, FrameError> {
    let malformed = |e: serde_json::Error| FrameError::Malformed(e.to_string());
    let sent: serde_json::Value = serde_json::from_slice(body).map_err(malformed)?;
    let env = Envelope::deserialize(&sent).map_err(malformed)?;
    // serde's `deny_unknown_fields` does not reach the unit variants of a tagged enum:
    // `{"op":"clear","force":true}` would decode as a clear. Every field sent must be one the
    // decoded message has.
    let known = serde_json::to_value(&env).map_err(malformed)?;
    if let Some(field) = unknown_field(&sent, &known, "") {
        return Err(FrameError::Malformed(format!("unknown field `{field}`")));
    }
    if env.version != VERSION {
        return Err(FrameError::Malformed(format!(
            "protocol version {} is not supported (this rvsd speaks {VERSION})",
            env.version
        )));
    }
    Ok(env.request)
}

/// The first field of `sent` that `known` (what `sent` decoded to, written back) lacks, as a
/// path (`request.requests[1].force`).
fn unknown_field(sent: &serde_json::Value, known: &serde_json::Value, at: &str) -> Option<String> {
    use serde_json::Value;
    match (sent, known) {
        (Value::Object(sent), Value::Object(known)) => sent.iter().find_map(|(key, value)| {
            let path = if at.is_empty() {
                key.clone()
            } else {
                format!("{at}.{key}")
            };
            match known.get(key) {
                None => Some(path),
                Some(k) => unknown_field(value, k, &path),
            }
        }),
        (Value::Array(sent), Value::Array(known)) => sent
            .iter()
            .zip(known)
            .enumerate()
            .find_map(|(i, (s, k))| unknown_field(s, k, &format!("{at}[{i}]"))),
        _ => None,
    }
}

/// Decodes a response body.
///
/// # Errors
/// [`FrameError::Malformed`].
pub fn decode_response(body: &[u8]) -> Result<Response, FrameError> {
    serde_json::from_slice(body).map_err(|e| FrameError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{DestSpec, ProtoName, SvcKey};
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    fn key() -> SvcKey {
        SvcKey {
            proto: ProtoName::Tcp,
            vip: Ipv4Addr::new(192, 0, 2, 1).into(),
            port: 80,
        }
    }

    #[test]
    fn requests_round_trip_through_frames() {
        let reqs = vec![
            Request::AddService {
                service: key(),
                scheduler: "wrr".into(),
                persistence: Some(300),
                synproxy: true,
                proxy_protocol: None,
                toa: false,
            },
            Request::AddDest {
                service: key(),
                dest: DestSpec {
                    addr: Ipv4Addr::new(10, 0, 0, 1).into(),
                    port: 8080,
                    weight: 3,
                    mode: "fullnat".into(),
                },
            },
            Request::Batch {
                requests: vec![Request::Clear, Request::Zero { service: None }],
            },
            Request::List { service: None },
        ];
        for r in reqs {
            let mut buf = Vec::new();
            write_frame(
                &mut buf,
                &Envelope {
                    version: VERSION,
                    request: r.clone(),
                },
            )
            .unwrap();
            let body = read_frame_bytes(&mut buf.as_slice()).unwrap();
            assert_eq!(decode_request(&body).unwrap(), r);
        }
    }

    #[test]
    fn bad_messages_are_refused_with_reasons() {
        // rvsadm of protocol 1 (before -L -c was paged) is told, not misread.
        let e = decode_request(br#"{"version":1,"request":{"op":"clear"}}"#).unwrap_err();
        assert!(
            e.to_string()
                .contains("version 1 is not supported (this rvsd speaks 2)"),
            "{e}"
        );
        let e = decode_request(br#"{"version":2,"request":{"op":"format-disk"}}"#).unwrap_err();
        assert!(e.to_string().contains("unknown variant"), "{e}");
        let e = decode_request(br#"{"version":2,"request":{"op":"clear"},"x":1}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
        // Operations without fields take none either, in a batch too.
        for (body, field) in [
            (
                r#"{"version":2,"request":{"op":"clear","force":true}}"#,
                "request.force",
            ),
            (
                r#"{"version":2,"request":{"op":"workers","id":0}}"#,
                "request.id",
            ),
            (
                r#"{"version":2,"request":{"op":"ports","name":"wan"}}"#,
                "request.name",
            ),
            (
                r#"{"version":2,"request":{"op":"batch","requests":[{"op":"zero","service":null},{"op":"clear","all":1}]}}"#,
                "request.requests[1].all",
            ),
        ] {
            let e = decode_request(body.as_bytes()).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("malformed message: unknown field `{field}`"),
                "{body}"
            );
        }
        // Optional fields may be left out.
        assert_eq!(
            decode_request(br#"{"version":2,"request":{"op":"list"}}"#).unwrap(),
            Request::List { service: None }
        );
        // A listing's first page names no cursor; the next ones name theirs, strictly.
        assert_eq!(
            decode_request(br#"{"version":2,"request":{"op":"connections"}}"#).unwrap(),
            Request::Connections { from: None }
        );
        assert_eq!(
            decode_request(
                br#"{"version":2,"request":{"op":"connections","from":{"worker":3,"slot":70000}}}"#
            )
            .unwrap(),
            Request::Connections {
                from: Some(crate::message::ConnCursor {
                    worker: 3,
                    slot: 70000
                })
            }
        );
        for (body, what) in [
            (
                r#"{"version":2,"request":{"op":"connections","from":{"worker":0,"slot":1,"page":2}}}"#,
                "unknown field `page`",
            ),
            (
                r#"{"version":2,"request":{"op":"connections","from":{"worker":0}}}"#,
                "missing field `slot`",
            ),
            (
                r#"{"version":2,"request":{"op":"connections","from":{"worker":65536,"slot":0}}}"#,
                "invalid value",
            ),
        ] {
            let e = decode_request(body.as_bytes()).unwrap_err();
            assert!(e.to_string().contains(what), "{body}: {e}");
        }
        let mut big = Vec::new();
        big.extend_from_slice(&((MAX_FRAME as u32) + 1).to_be_bytes());
        let e = read_frame_bytes(&mut big.as_slice()).unwrap_err();
        assert!(matches!(e, FrameError::TooLarge(_)), "{e}");
        // A zero-length frame is read (and is not a request); a cut one is an I/O error.
        assert_eq!(read_frame_bytes(&mut [0u8; 4].as_slice()).unwrap(), b"");
        assert!(decode_request(b"").is_err());
        let cut = [0, 0, 0, 9, b'{', b'}'];
        let e = read_frame_bytes(&mut cut.as_slice()).unwrap_err();
        assert!(
            matches!(e, FrameError::Io(ref io) if io.kind() == io::ErrorKind::UnexpectedEof),
            "{e}"
        );
    }

    #[test]
    fn a_message_over_the_limit_is_refused_with_its_size_and_nothing_written() {
        let big = Response::Error {
            kind: crate::message::ErrorKind::Internal,
            message: "x".repeat(MAX_FRAME),
        };
        let size = serde_json::to_vec(&big).unwrap().len();
        assert!(matches!(encode(&big), Err(FrameError::TooLarge(n)) if n == size));
        let mut wire = Vec::new();
        assert!(matches!(
            write_frame(&mut wire, &big),
            Err(FrameError::TooLarge(_))
        ));
        assert!(wire.is_empty());
        assert!(matches!(
            write_body(&mut wire, &vec![b' '; MAX_FRAME + 1]),
            Err(FrameError::TooLarge(_))
        ));
        assert!(wire.is_empty());
    }

    #[test]
    fn a_page_of_the_longest_sessions_fits_in_half_a_frame() {
        use crate::message::{ConnCursor, ConnView, CONNECTIONS_PAGE};
        // The longest address text there is: a full IPv6 address.
        let far = std::net::IpAddr::V6(std::net::Ipv6Addr::from(u128::MAX - 1));
        let longest = ConnView {
            proto: ProtoName::Icmp,
            expire_secs: u64::MAX,
            // The longest state name a session has (conntrack's names are at most 11 bytes);
            // twice that for margin.
            state: "ESTABLISHEDESTABLISHED".into(),
            source: far,
            sport: u16::MAX,
            vip: far,
            vport: u16::MAX,
            dest: far,
            dport: u16::MAX,
            local: Some((far, u16::MAX)),
            worker: u16::MAX,
        };
        let page = Response::Connections {
            conns: vec![longest; CONNECTIONS_PAGE],
            next: Some(ConnCursor {
                worker: u16::MAX,
                slot: u32::MAX,
            }),
            local: true,
        };
        let size = serde_json::to_vec(&page).unwrap().len();
        assert!(size < MAX_FRAME / 2, "{size} bytes");
        let mut wire = Vec::new();
        write_frame(&mut wire, &page).unwrap();
        let body = read_frame_bytes(&mut wire.as_slice()).unwrap();
        assert_eq!(decode_response(&body).unwrap(), page);
    }

    #[test]
    fn ports_round_trip_and_bad_answers_are_refused() {
        assert_eq!(
            decode_request(br#"{"version":2,"request":{"op":"ports"}}"#).unwrap(),
            Request::Ports
        );
        let answer = Response::Ports {
            ports: vec![crate::message::PortView {
                name: "wan".into(),
                link_up: true,
                speed_mbps: 10_000,
                rx_packets: u64::MAX,
                rx_nombuf: 1,
                ..Default::default()
            }],
        };
        let mut wire = Vec::new();
        write_frame(&mut wire, &answer).unwrap();
        let body = read_frame_bytes(&mut wire.as_slice()).unwrap();
        assert_eq!(decode_response(&body).unwrap(), answer);
        let good = serde_json::to_string(&answer).unwrap();
        for (bad, why) in [
            (good.replace("10000", "-1"), "invalid value"),
            (
                good.replace("\"link_up\":true", "\"link_up\":1"),
                "invalid type",
            ),
            (
                good.replace("\"rx_nombuf\":1", "\"rx_nombuf\":1,\"x\":2"),
                "unknown field",
            ),
            (
                good.replace("\"name\":\"wan\",", ""),
                "missing field `name`",
            ),
            (good.replace("[{", "{").replace("}]", "}"), "invalid type"),
        ] {
            let e = decode_response(bad.as_bytes()).unwrap_err();
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
    }

    proptest! {
        #[test]
        fn the_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_request(&bytes);
            let _ = read_frame_bytes(&mut bytes.as_slice());
        }

        #[test]
        fn json_shaped_garbage_never_panics(s in r#"\{"version":2,"request":\{"op":"[a-z-]{0,14}"(,"[a-z]{1,8}":[0-9a-z"\[\]{}.,]{0,20}){0,3}\}\}"#) {
            let _ = decode_request(s.as_bytes());
        }
    }
}
