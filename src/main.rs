use clap::Parser;
use headnode::cli::Cli;
use headnode::commands;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    headnode::logging::init(cli.verbose);
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", commands::render_error(&e));
            ExitCode::from(commands::exit_code(&e))
        }
    }
}
