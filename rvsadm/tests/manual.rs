//! The manual pages (docs/man) against the code: every option rvsadm's parser reads is in
//! `rvsadm -h` and in rvsadm.8, and every page renders without a groff warning.

use rvsadm::cli;
use std::path::PathBuf;
use std::process::Command;

/// A page of docs/man.
fn page_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/man")
        .join(name)
}

fn page(name: &str) -> String {
    let path = page_path(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Whether `text` has `word` not followed by more of an option name (`--icmp` is not found
/// in `--icmp-service` alone); `more` says what continues a name there.
fn has_word(text: &str, word: &str, more: &[&str]) -> bool {
    text.match_indices(word).any(|(at, _)| {
        let rest = &text[at + word.len()..];
        let continued = rest
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            || more.iter().any(|m| rest.starts_with(m));
        !continued
    })
}

/// `--name` as roff writes it (`\-\-name`, each hyphen escaped), as a whole option name.
fn in_roff(page: &str, long: &str) -> bool {
    let roff = format!("\\-\\-{}", long.replace('-', "\\-"));
    has_word(page, &roff, &["\\-"])
}

/// `--name` in plain text, as a whole option name.
fn in_text(text: &str, long: &str) -> bool {
    has_word(text, &format!("--{long}"), &["-"])
}

#[test]
fn every_long_option_is_in_the_usage_and_the_manual() {
    let usage = cli::usage();
    let manual = page("rvsadm.8");
    let options = cli::long_options();
    assert!(options.len() > 50, "{options:?}");
    for (long, supported) in options {
        if supported {
            assert!(
                in_text(&usage, long),
                "rvsadm -h (cli::usage) does not list --{long}"
            );
        }
        // Refused ones too: the manual says why ("DIFFERENCES FROM IPVSADM").
        assert!(
            in_roff(&manual, long),
            "docs/man/rvsadm.8 does not name --{long} (as \\-\\-{})",
            long.replace('-', "\\-")
        );
    }
}

#[test]
fn every_short_option_is_in_the_manual() {
    let manual = page("rvsadm.8");
    for (short, _) in cli::short_options() {
        let roff = format!(
            "\\-{}",
            if short == '-' {
                "\\-".into()
            } else {
                short.to_string()
            }
        );
        assert!(
            has_word(&manual, &roff, &[]),
            "docs/man/rvsadm.8 does not name -{short}"
        );
    }
}

#[test]
fn the_option_finders_tell_names_apart() {
    assert!(in_text("  --icmp-service x", "icmp-service"));
    assert!(!in_text("  --icmp-service x", "icmp"));
    assert!(in_text("--icmp, --lips", "icmp"));
    assert!(!in_text("--sync-peer", "sync"));
    assert!(in_roff(".BR \\-\\-sync\\-peer \" a\"", "sync-peer"));
    assert!(!in_roff(".B \\-\\-sync\\-peer", "sync"));
    assert!(in_roff(".B \\-\\-toa\n", "toa"));
    assert!(!in_roff("\\-\\-toad", "toa"));
}

/// groff's path, or a failure that says how to get it (scripts/install-deps installs it).
fn groff() -> &'static str {
    let found = Command::new("groff").arg("--version").output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "groff is missing: run scripts/install-deps (Debian's groff-base)"
    );
    "groff"
}

#[test]
fn every_page_renders_without_a_groff_warning() {
    let groff = groff();
    let dir = page_path("");
    let mut pages: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "5" || x == "8"))
        .collect();
    pages.sort();
    let names: Vec<String> = pages
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["rvsadm.8", "rvsd.8", "rvsd.toml.5"]);
    for p in &pages {
        // -ww: every warning; -z: format, print nothing. A warning is a line on stderr.
        let out = Command::new(groff)
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(p)
            .output()
            .expect("run groff");
        let warnings = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && warnings.trim().is_empty(),
            "{}: groff says:\n{warnings}",
            p.display()
        );
    }
}

#[test]
fn a_broken_page_is_caught() {
    // The check above is not blind: an unknown macro and an unbalanced font are warnings.
    let groff = groff();
    let dir = std::env::temp_dir().join(format!("rvsadm-manual-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.8");
    std::fs::write(
        &bad,
        ".TH BAD 8\n.SH NAME\nbad \\- bad\n.XYZ nothing\n\\fQ x\n",
    )
    .unwrap();
    let out = Command::new(groff)
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .arg(&bad)
        .output()
        .expect("run groff");
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stderr).trim().is_empty(),
        "groff printed no warning for a broken page"
    );
}
