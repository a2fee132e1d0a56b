use clap::Parser;
use headnode::cli::Cli;
use headnode::commands;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap exits 2 on bad arguments, which headnode documents as a
            // runtime failure: bad arguments are invalid input, 1. `--help`
            // and `--version` go to stdout and succeed.
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    headnode::logging::init(cli.verbose);
    match commands::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("{}", headnode::errors::render(&e));
            ExitCode::from(headnode::errors::exit_code(&e))
        }
    }
}
