use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = weir::Cli::parse();
    weir::init_logging(cli.verbose, cli.quiet);
    match weir::dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            weir::exit_code(&e)
        }
    }
}
