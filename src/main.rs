use clap::Parser;
use headnode::cli::Cli;
use headnode::commands;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    headnode::logging::init(cli.verbose);
    match commands::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("{}", headnode::errors::render(&e));
            ExitCode::from(headnode::errors::exit_code(&e))
        }
    }
}
