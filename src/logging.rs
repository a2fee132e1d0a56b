//! Logging through tracing: plain lines on stderr, without timestamps and
//! colours under systemd (journald adds its own), `RUST_LOG` overrides `-v`.
//! Colours only on a terminal, and never when `NO_COLOR` is set to anything
//! but the empty string (<https://no-color.org>).

use tracing_subscriber::EnvFilter;

pub fn init(verbose: u8) {
    let level = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = builder.with_ansi(colour(tty, journald, std::env::var_os("NO_COLOR")));
    if journald {
        builder.without_time().init();
    } else {
        builder.init();
    }
}

/// Whether log lines get ANSI colours.
fn colour(tty: bool, journald: bool, no_color: Option<std::ffi::OsString>) -> bool {
    let no_color = no_color.is_some_and(|v| !v.is_empty());
    tty && !journald && !no_color
}

#[cfg(test)]
mod tests {
    use super::colour;

    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        assert!(colour(true, false, None));
        assert!(colour(true, false, Some("".into())));
        assert!(!colour(true, false, Some("1".into())));
        assert!(!colour(false, false, None));
        assert!(!colour(true, true, None));
    }
}
