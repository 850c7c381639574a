//! `hyperflux`: prune neural networks with Hyperflux, measure the Neural Pruning Law, and run
//! pruned networks fast. Every error is one line on stderr with exit code 1 (2 for usage errors).

mod bench;
mod cli;
mod export_cmd;
mod law_cmd;
mod progress;
mod report;
mod run;

use clap::Parser;

fn main() {
    // Behave like other Unix tools when the reader of our output goes away (`| head`):
    // end quietly instead of panicking on a broken pipe.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let args = cli::Cli::parse();
    if let Err(e) = run::dispatch(args) {
        // One line: the error and its causes, no backtrace.
        let mut msg = e.to_string();
        for cause in e.chain().skip(1) {
            let c = cause.to_string();
            if !msg.contains(&c) {
                msg.push_str(": ");
                msg.push_str(&c);
            }
        }
        eprintln!("error: {msg}");
        std::process::exit(1);
    }
}
