//! Where rvsd's log lines go and how they look.
//!
//! - On a terminal: tracing's usual lines, with timestamps and colours.
//! - Under journald (`$JOURNAL_STREAM` names standard error's device and inode, as systemd
//!   sets it for a unit's output): plain lines with no timestamp (the journal adds its own) and
//!   no colours, each starting with its syslog priority (`<3>` error … `<7>` debug, sd-daemon(3)),
//!   so that `journalctl -p warning` finds rvsd's warnings.
//! - Anywhere else (a pipe, a file): plain lines with timestamps and no colours.
//!
//! `RVS_LOG` is the filter (tracing-subscriber's `EnvFilter` syntax, default `info`);
//! `rvsadm --log-level FILTER` replaces it while rvsd runs (the setter [`init`] returns).

use std::fmt;
use std::io::IsTerminal;
use std::os::unix::fs::MetadataExt;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{DefaultFields, Format, Full, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

pub use control::state::LogFilterSetter;

/// How the lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// A terminal: timestamps and colours.
    Terminal,
    /// journald: priority prefixes, no timestamps, no colours.
    Journal,
    /// A pipe or file: timestamps, no colours.
    Plain,
}

impl Style {
    /// The style for standard error as it is now.
    pub fn detect() -> Style {
        let journal = std::env::var("JOURNAL_STREAM").ok();
        let stderr = std::fs::metadata("/proc/self/fd/2").ok();
        Style::choose(
            journal.as_deref(),
            stderr.map(|m| (m.dev(), m.ino())),
            std::io::stderr().is_terminal(),
        )
    }

    /// The style given `$JOURNAL_STREAM`, standard error's (device, inode) and whether it is a
    /// terminal. `JOURNAL_STREAM` is `DEVICE:INODE` in decimal; it only counts when it names
    /// standard error itself (a child of a unit inherits the variable with other output).
    fn choose(journal: Option<&str>, stderr: Option<(u64, u64)>, terminal: bool) -> Style {
        let named = journal
            .and_then(|j| j.split_once(':'))
            .and_then(|(d, i)| Some((d.parse::<u64>().ok()?, i.parse::<u64>().ok()?)));
        match (named, stderr) {
            (Some(n), Some(e)) if n == e => Style::Journal,
            _ if terminal => Style::Terminal,
            _ => Style::Plain,
        }
    }
}

/// A line for journald: the syslog priority, then the event without time or colour.
struct Journal(Format<Full, ()>);

/// The syslog priority of a level (sd-daemon(3)'s `SD_ERR` … `SD_DEBUG`).
fn priority(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

impl<S, N> FormatEvent<S, N> for Journal
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write!(writer, "<{}>", priority(*event.metadata().level()))?;
        self.0.format_event(ctx, writer, event)
    }
}

/// Installs the global subscriber for `style`; returns what replaces its filter at run time.
pub fn init(style: Style) -> LogFilterSetter {
    let filter = EnvFilter::try_from_env("RVS_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // Each style is a different subscriber type; the setter hides which.
    macro_rules! install {
        ($builder:expr) => {{
            let builder = $builder.with_filter_reloading();
            let handle = builder.reload_handle();
            builder.init();
            Box::new(move |text: &str| {
                let filter = EnvFilter::try_new(text).map_err(|e| e.to_string())?;
                handle.reload(filter).map_err(|e| e.to_string())
            })
        }};
    }
    match style {
        Style::Terminal => install!(builder.with_ansi(true)),
        Style::Plain => install!(builder.with_ansi(false)),
        Style::Journal => install!(builder
            .with_ansi(false)
            .fmt_fields(DefaultFields::new())
            .event_format(Journal(
                tracing_subscriber::fmt::format()
                    .without_time()
                    .with_ansi(false),
            ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_style_follows_standard_error() {
        let e = Some((27, 4242));
        assert_eq!(Style::choose(Some("27:4242"), e, false), Style::Journal);
        // journald wins over a terminal it names (it never does, but the stream is the truth).
        assert_eq!(Style::choose(Some("27:4242"), e, true), Style::Journal);
        // Inherited from a unit but pointing elsewhere: not the journal.
        assert_eq!(Style::choose(Some("27:4243"), e, false), Style::Plain);
        assert_eq!(Style::choose(Some("27:4243"), e, true), Style::Terminal);
        assert_eq!(Style::choose(Some("junk"), e, false), Style::Plain);
        assert_eq!(Style::choose(None, e, true), Style::Terminal);
        assert_eq!(Style::choose(None, None, false), Style::Plain);
    }

    #[test]
    fn priorities_are_sd_daemons() {
        assert_eq!(priority(Level::ERROR), 3);
        assert_eq!(priority(Level::WARN), 4);
        assert_eq!(priority(Level::INFO), 6);
        assert_eq!(priority(Level::DEBUG), 7);
    }
}
