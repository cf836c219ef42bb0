//! Script checks (keepalived's MISC_CHECK): a program run for each dest; exit status 0 is a
//! pass, anything else — another status, a signal, running past the timeout — a failure.
//!
//! The command line is split into words as keepalived does, without a shell: blanks separate
//! words, single quotes keep text as it is, double quotes keep blanks (a backslash in them
//! escapes `"` and `\`), a backslash outside quotes escapes the next character. Nothing else
//! is special: no variables, globs or redirections unless the operator writes `sh -c '...'`.
//! The dest is given two ways: the words `{addr}` and `{port}` anywhere in an argument are
//! replaced by the probed address and port, and the environment has `RVS_DEST_ADDR`,
//! `RVS_DEST_PORT`, `RVS_SERVICE_PROTO`, `RVS_SERVICE_VIP` and `RVS_SERVICE_PORT`.
//!
//! The program runs as rvsd's user, in its own process group, with standard input, output and
//! error on /dev/null. At the timeout, or when the checks stop, the whole group is killed
//! (SIGKILL) and reaped. Each dest's check has its own thread: a slow script holds up no
//! other dest.

use sched::ServiceKey;
use std::fmt;
use std::net::SocketAddr;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A script check: the command as configured and its words.
#[derive(Clone, PartialEq, Eq)]
pub struct ScriptCheck {
    command: String,
    argv: Vec<String>,
}

/// Why a script command line was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScriptError {
    /// No words.
    #[error("script is empty: give the program to run, e.g. \"/usr/local/bin/check-db {{addr}} {{port}}\"")]
    Empty,
    /// A quote left open.
    #[error("script '{0}': unterminated quote")]
    Unterminated(String),
    /// A backslash at the very end.
    #[error("script '{0}': ends with a lone backslash")]
    TrailingBackslash(String),
    /// The program is not there.
    #[error("script program '{0}' does not exist (or is not on PATH)")]
    NotFound(String),
    /// The program is not an executable file.
    #[error("script program '{0}' is not an executable file")]
    NotExecutable(String),
}

impl ScriptCheck {
    /// Splits `command` into words and checks that its program exists and is executable
    /// (a bare name is looked up on PATH).
    ///
    /// # Errors
    /// An empty command, an unterminated quote, a missing or non-executable program.
    pub fn parse(command: &str) -> Result<ScriptCheck, ScriptError> {
        let argv = split(command)?;
        let program = argv.first().ok_or(ScriptError::Empty)?;
        find_program(program)?;
        Ok(ScriptCheck {
            command: command.trim().to_string(),
            argv,
        })
    }

    /// The command as configured.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// Its words: the program, then its arguments (before `{addr}` and `{port}` are
    /// replaced).
    pub fn argv(&self) -> &[String] {
        &self.argv
    }

    /// Runs the script for the dest probed at `addr` of `service`, waiting at most
    /// `timeout` (and no longer than `stop` stays false).
    ///
    /// # Errors
    /// Why the dest failed: the status it exited with, the signal that ended it, the timeout,
    /// or why it could not start.
    pub fn run(
        &self,
        service: ServiceKey,
        addr: SocketAddr,
        timeout: Duration,
        stop: &AtomicBool,
    ) -> Result<(), String> {
        let (a, p) = (addr.ip().to_string(), addr.port().to_string());
        let words: Vec<String> = self
            .argv
            .iter()
            .map(|w| w.replace("{addr}", &a).replace("{port}", &p))
            .collect();
        let mut child = Command::new(&words[0])
            .args(&words[1..])
            .env("RVS_DEST_ADDR", &a)
            .env("RVS_DEST_PORT", &p)
            .env("RVS_SERVICE_PROTO", service.proto.to_string())
            .env("RVS_SERVICE_VIP", service.vip.to_string())
            .env("RVS_SERVICE_PORT", service.port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("script {}: cannot start: {e}", words[0]))?;
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(1);
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) => {}
                Err(e) => {
                    kill(&mut child);
                    return Err(format!("script: waiting for it: {e}"));
                }
            }
            let now = Instant::now();
            if now >= deadline || stop.load(Ordering::Acquire) {
                kill(&mut child);
                return Err(if now >= deadline {
                    format!("script timed out after {timeout:?}: killed")
                } else {
                    "script: checks stopping: killed".into()
                });
            }
            std::thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(Duration::from_millis(20));
        };
        match (status.code(), status.signal()) {
            (Some(0), _) => Ok(()),
            (Some(c), _) => Err(format!("script exited with status {c}")),
            (None, Some(s)) => Err(format!("script killed by signal {s}")),
            (None, None) => Err(format!("script ended: {status}")),
        }
    }
}

impl fmt::Debug for ScriptCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ScriptCheck({:?})", self.argv)
    }
}

/// Kills the child's whole process group, then reaps the child.
fn kill(child: &mut std::process::Child) {
    let pid = rustix::process::Pid::from_child(child);
    // The group is the child's own (process_group(0)): its pid.
    if rustix::process::kill_process_group(pid, rustix::process::Signal::KILL).is_err() {
        let _ = child.kill();
    }
    let _ = child.wait();
}

/// Splits a command line into words (see the module's documentation).
fn split(command: &str) -> Result<Vec<String>, ScriptError> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = command.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(ScriptError::Unterminated(command.into())),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(ScriptError::Unterminated(command.into())),
                        },
                        Some(c) => word.push(c),
                        None => return Err(ScriptError::Unterminated(command.into())),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => word.push(c),
                    None => return Err(ScriptError::TrailingBackslash(command.into())),
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// Checks that `program` is an executable file: as a path if it has a `/`, else on PATH.
fn find_program(program: &str) -> Result<(), ScriptError> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let p = Path::new(program);
        if !p.exists() {
            return Err(ScriptError::NotFound(program.into()));
        }
        return if executable(p) {
            Ok(())
        } else {
            Err(ScriptError::NotExecutable(program.into()))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    if std::env::split_paths(&path).any(|dir| executable(&dir.join(program))) {
        Ok(())
    } else {
        Err(ScriptError::NotFound(program.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn key() -> ServiceKey {
        ServiceKey {
            proto: conntrack::Proto::Tcp,
            vip: Ipv4Addr::new(192, 0, 2, 100).into(),
            port: 80,
        }
    }

    #[test]
    fn command_lines_split_like_keepalived_without_a_shell() {
        let w = split(r#"/bin/check  -H {addr} 'a b' "c \"d\" \e" x\ y $HOME;rm"#).unwrap();
        assert_eq!(
            w,
            [
                "/bin/check",
                "-H",
                "{addr}",
                "a b",
                r#"c "d" \e"#,
                "x y",
                "$HOME;rm"
            ]
        );
        assert_eq!(split("  ").unwrap(), Vec::<String>::new());
        assert_eq!(split("''").unwrap(), [""]);
        assert!(matches!(split("a 'b"), Err(ScriptError::Unterminated(_))));
        assert!(matches!(split("a \"b"), Err(ScriptError::Unterminated(_))));
        assert!(matches!(
            split("a \\"),
            Err(ScriptError::TrailingBackslash(_))
        ));
        assert_eq!(ScriptCheck::parse("  "), Err(ScriptError::Empty));
        assert_eq!(
            ScriptCheck::parse("/nonexistent/check"),
            Err(ScriptError::NotFound("/nonexistent/check".into()))
        );
        let plain = std::env::temp_dir().join(format!("rvs-not-executable-{}", std::process::id()));
        std::fs::write(&plain, "#!/bin/sh\n").unwrap();
        let name = plain.to_str().unwrap();
        assert_eq!(
            ScriptCheck::parse(name),
            Err(ScriptError::NotExecutable(name.into()))
        );
        std::fs::remove_file(&plain).unwrap();
        assert_eq!(
            ScriptCheck::parse("no-such-program-on-path"),
            Err(ScriptError::NotFound("no-such-program-on-path".into()))
        );
        assert_eq!(
            ScriptCheck::parse("sh -c 'exit 0'").unwrap().argv(),
            ["sh", "-c", "exit 0"]
        );
    }

    fn run(command: &str, timeout_ms: u64) -> Result<(), String> {
        let addr: SocketAddr = "10.1.0.11:8080".parse().unwrap();
        ScriptCheck::parse(command).unwrap().run(
            key(),
            addr,
            Duration::from_millis(timeout_ms),
            &AtomicBool::new(false),
        )
    }

    #[test]
    fn the_exit_status_is_the_verdict() {
        assert_eq!(run("/bin/true", 2000), Ok(()));
        assert_eq!(
            run("/bin/false", 2000).unwrap_err(),
            "script exited with status 1"
        );
        assert_eq!(
            run("sh -c 'kill -TERM $$'", 2000).unwrap_err(),
            "script killed by signal 15"
        );
        // The dest in the arguments and in the environment.
        assert_eq!(
            run(
                "sh -c 'test \"$0:$1\" = 10.1.0.11:8080 && test \"$RVS_DEST_ADDR:$RVS_DEST_PORT\" = 10.1.0.11:8080 && test \"$RVS_SERVICE_PROTO $RVS_SERVICE_VIP:$RVS_SERVICE_PORT\" = \"tcp 192.0.2.100:80\"' {addr} {port}",
                2000
            ),
            Ok(())
        );
        assert_eq!(
            run("sh -c 'test \"$0\" = 10.1.0.12' {addr}", 2000).unwrap_err(),
            "script exited with status 1"
        );
        // No shell: `;` is an argument, not a second command.
        assert_eq!(run("/bin/true ; false", 2000), Ok(()));
    }

    #[test]
    fn a_script_past_its_timeout_is_killed_with_its_children() {
        let dir = std::env::temp_dir().join(format!("rvs-script-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pidfile = dir.join("child.pid");
        let started = Instant::now();
        // The script's child (a sleep in the background) is in its process group: killed too.
        let e = run(
            &format!("sh -c 'sleep 30 & echo $! > {}; wait'", pidfile.display()),
            300,
        )
        .unwrap_err();
        let took = started.elapsed();
        assert_eq!(e, "script timed out after 300ms: killed");
        assert!(took < Duration::from_secs(3), "{took:?}");
        let child: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // Killed; reaped by init (or gone) within a moment.
        let gone = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
            stat.is_empty() || stat.split_whitespace().nth(2) == Some("Z")
        });
        assert!(gone, "the script's child {child} still runs");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn stopping_the_checks_kills_a_running_script() {
        let stop = AtomicBool::new(false);
        let s = ScriptCheck::parse("sleep 30").unwrap();
        let started = Instant::now();
        std::thread::scope(|sc| {
            sc.spawn(|| {
                std::thread::sleep(Duration::from_millis(100));
                stop.store(true, Ordering::Release);
            });
            let e = s
                .run(
                    key(),
                    "10.1.0.11:80".parse().unwrap(),
                    Duration::from_secs(20),
                    &stop,
                )
                .unwrap_err();
            assert_eq!(e, "script: checks stopping: killed");
        });
        assert!(started.elapsed() < Duration::from_secs(3));
    }
}
