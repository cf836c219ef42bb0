//! Prints a `pipeline` input as the harness reads it — records, then what each cycle sent —
//! to read a crash reproducer or a corpus entry:
//!
//! ```sh
//! cargo run --manifest-path fuzz/Cargo.toml --example show -- fuzz/regressions/pipeline/FILE
//! ```

use rvs_fuzz::pipeline::{self, Record, STEPS};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn main() {
    let path = std::env::args().nth(1).expect("usage: show FILE");
    let data = std::fs::read(&path).expect("read");
    let port = |p: u16| ["wan", "lan", "tap"][p as usize];
    for r in pipeline::records(&data) {
        match r {
            Record::Publish(i) => println!("publish snapshot {i}"),
            Record::Worker(w) => println!("frames to worker {w}"),
            Record::Frame {
                port: p,
                bytes,
                repair,
                end,
                step,
                slow,
            } => {
                let mut f = bytes.to_vec();
                if repair {
                    pipeline::repair(&mut f);
                }
                let verdict = match dataplane::parse::parse(&f) {
                    Ok(p) => format!("{:?}", p.l3),
                    Err(e) => format!("parse error: {e}"),
                };
                println!(
                    "{} {} bytes{}{}: {}\n    {verdict}",
                    port(p),
                    f.len(),
                    if repair { " (repaired)" } else { "" },
                    if end {
                        format!(
                            " | end of cycle: +{} ms{}",
                            STEPS[step],
                            if slow { ", slow jobs" } else { "" }
                        )
                    } else {
                        String::new()
                    },
                    hex(&f)
                );
            }
        }
    }
    let (outs, counters) = pipeline::trace_counted(&data);
    for (i, out) in outs.iter().enumerate() {
        println!("cycle {i}: {} frames out", out.len());
        for (p, f) in out {
            println!("    {} {}", port(*p), hex(f));
        }
    }
    for (w, c) in counters.iter().enumerate() {
        let drops: Vec<String> = dataplane::DropReason::ALL
            .iter()
            .filter(|r| c.drop_count(**r) > 0)
            .map(|r| format!("{r} {}", c.drop_count(*r)))
            .collect();
        println!("worker {w}: {c:?}\n    drops: {}", drops.join(", "));
    }
}
