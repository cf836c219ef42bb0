//! The `sync_decode` target: bytes as a session sync datagram a backup director received,
//! checked with `dataplane::sync::Datagram::parse` (expecting the sync id the datagram itself
//! carries, so that its records are reached) and read record by record.
//!
//! Invariants:
//!
//! - No panic, whatever the bytes.
//! - A refused datagram is refused for a datagram-level reason (`SyncDrop::refuses_datagram`);
//!   a datagram that checks is refused with any other sync id (`wrong_sync_id`).
//! - A datagram that checks yields exactly its count of records; a refused record is refused
//!   for a record-level reason.
//! - Every decoded record is valid (`SyncRecord::validate`), and re-encoded alone
//!   (`DatagramWriter`) and decoded again gives the same record; all of them re-encoded into
//!   one datagram with the same header (which fits in the input's length) decode to the same
//!   records in order, and when no record was refused that datagram is the input, byte for
//!   byte (the encoding is canonical: the reader accepts only what the writer writes).

use dataplane::sync::{
    wire::header, Datagram, DatagramWriter, SyncDrop, SyncRecord, MAX_DATAGRAM_LEN,
};

/// Runs one fuzz input (see the module doc). Panics on any broken invariant.
pub fn run(data: &[u8]) {
    let own = data.get(header::SYNC_ID).copied().unwrap_or(0);
    let g = match Datagram::parse(data, own) {
        Ok(g) => g,
        Err(e) => {
            assert!(e.refuses_datagram(), "datagram refused for {e}");
            return;
        }
    };
    assert_eq!(
        Datagram::parse(data, own.wrapping_add(1)).err(),
        Some(SyncDrop::WrongSyncId)
    );
    assert!(data.len() <= MAX_DATAGRAM_LEN);
    let h = g.header();
    assert_eq!(g.records().len(), usize::from(g.count()));
    let mut decoded: Vec<SyncRecord> = Vec::new();
    let mut refused = 0usize;
    for r in g.records() {
        match r {
            Ok(rec) => {
                assert_eq!(rec.validate(), Ok(()), "{rec:?}");
                let mut buf = [0u8; 128];
                let mut w = DatagramWriter::new(&mut buf, &h).expect("room for the header");
                w.push(&rec).expect("a decoded record encodes");
                let again = Datagram::parse(w.datagram(), h.sync_id).expect("re-encoded");
                let back: Vec<_> = again.records().collect();
                assert_eq!(back, vec![Ok(rec)]);
                decoded.push(rec);
            }
            Err(e) => {
                assert!(!e.refuses_datagram(), "record refused for {e}");
                refused += 1;
            }
        }
    }
    assert_eq!(decoded.len() + refused, usize::from(g.count()));
    let mut buf = vec![0u8; data.len()];
    let mut w = DatagramWriter::new(&mut buf, &h).expect("the input held a header");
    for rec in &decoded {
        w.push(rec)
            .expect("the decoded records fit where they came from");
    }
    let again = Datagram::parse(w.datagram(), h.sync_id).expect("re-encoded datagram");
    assert_eq!(again.header(), h);
    let back: Vec<SyncRecord> = again
        .records()
        .map(|r| r.expect("re-encoded record"))
        .collect();
    assert_eq!(back, decoded);
    if refused == 0 {
        assert_eq!(w.datagram(), data, "the encoding is canonical");
    }
}
