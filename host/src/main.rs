use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = weir::cli::Cli::parse();
    weir::cli::init_logging(cli.verbose, cli.quiet);
    match weir::cli::dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
