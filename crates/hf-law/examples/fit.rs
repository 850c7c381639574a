//! Fits law CSVs from the command line until the main binary wires `run_fit` in:
//!
//! `cargo run -p hf-law --example fit -- [--skip-nonpositive] [--region LO:HI] [--plot STEM]
//!  [--json] FILE_OR_DIR...`

use std::path::PathBuf;
use std::process::ExitCode;

use hf_law::{parse_region, run_fit, FitOptions};

fn main() -> ExitCode {
    let mut opts = FitOptions::default();
    let mut json = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--skip-nonpositive" => opts.skip_nonpositive = true,
            "--json" => json = true,
            "--region" | "--plot" => {
                let Some(v) = args.next() else {
                    eprintln!("error: {a} needs a value");
                    return ExitCode::from(2);
                };
                if a == "--plot" {
                    opts.plot_stem = Some(PathBuf::from(v));
                } else {
                    match parse_region(&v) {
                        Ok(r) => opts.region2 = r,
                        Err(e) => {
                            eprintln!("error: {e}");
                            return ExitCode::from(2);
                        }
                    }
                }
            }
            _ => opts.files.push(PathBuf::from(a)),
        }
    }
    match run_fit(&opts) {
        Ok(report) => {
            if json {
                println!("{:#}", report.to_json());
            } else {
                print!("{}", report.to_table());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
