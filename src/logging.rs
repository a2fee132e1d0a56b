//! Logging through tracing: plain lines on stderr, without timestamps and
//! colours under systemd (journald adds its own), `RUST_LOG` overrides `-v`.

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
    let builder = builder.with_ansi(tty && !journald);
    if journald {
        builder.without_time().init();
    } else {
        builder.init();
    }
}
