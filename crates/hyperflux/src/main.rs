//! `hyperflux`: prune neural networks with Hyperflux, measure the Neural Pruning Law, and run
//! pruned networks fast. Every error is one line on stderr with exit code 1 (2 for usage errors).

mod bench;
mod cli;
mod export_cmd;
mod flags;
mod frontier_cmd;
mod law_cmd;
mod onnxrt;
mod progress;
mod report;
mod run;
mod torch_ref;

use clap::Parser;

/// libtorch's OpenMP threads spin-wait between parallel regions by default. When anything else
/// runs on the machine that is catastrophic (measured on 2 busy cores: the LeNet step fell from
/// ~450 to ~20 steps/s). libgomp reads `OMP_WAIT_POLICY` when it is loaded, before `main`, so
/// unless the user chose a policy we set `PASSIVE` and re-execute ourselves once.
fn passive_openmp() {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        if std::env::var_os("OMP_WAIT_POLICY").is_some()
            || std::env::var_os("GOMP_SPINCOUNT").is_some()
        {
            return;
        }
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let err = std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env("OMP_WAIT_POLICY", "PASSIVE")
            .exec();
        // exec only returns on failure: carry on with the default policy.
        let _ = err;
    }
}

fn main() {
    // Behave like other Unix tools when the reader of our output goes away (`| head`):
    // end quietly instead of panicking on a broken pipe.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    passive_openmp();
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
