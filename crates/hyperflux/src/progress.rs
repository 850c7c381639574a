//! Progress display: an indicatif bar per epoch on a terminal, and one summary line per epoch
//! (always), so logs of non-interactive runs stay readable.

use hf_core::records::EpochRecord;
use hf_engine::trainer::Observer;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Prints epoch lines and draws step bars.
pub struct Progress {
    bar: Option<ProgressBar>,
    quiet: bool,
    total: usize,
    stop_after: Option<usize>,
}

impl Progress {
    /// A progress display; `quiet` turns the bars off; `stop_after` ends the run after that epoch.
    pub fn new(quiet: bool, stop_after: Option<usize>) -> Self {
        Self {
            bar: None,
            quiet,
            total: 0,
            stop_after,
        }
    }
}

/// λ with four decimals, or in scientific notation when it is small (pressure ladders go to 2^-10).
fn fmt_lambda(l: f64) -> String {
    if l != 0.0 && l.abs() < 0.01 {
        format!("{l:.3e}")
    } else {
        format!("{l:.4}")
    }
}

impl Observer for Progress {
    fn epoch_start(&mut self, epoch: usize, total: usize, steps: usize) {
        self.total = total;
        if self.quiet {
            return;
        }
        let bar = ProgressBar::with_draw_target(Some(steps as u64), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "epoch {prefix} [{bar:30}] {pos}/{len} {per_sec} loss {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix(format!("{epoch}/{total}"));
        self.bar = Some(bar);
    }

    fn step(&mut self, loss: f64) {
        if let Some(b) = &self.bar {
            b.inc(1);
            if b.position() % 20 == 0 {
                b.set_message(format!("{loss:.4}"));
            }
        }
    }

    fn note(&mut self, msg: &str) {
        if let Some(b) = &self.bar {
            b.suspend(|| eprintln!("note: {msg}"));
        } else {
            eprintln!("note: {msg}");
        }
    }

    fn stop_after(&mut self, epoch: usize) -> bool {
        self.stop_after
            .is_some_and(|s| epoch >= s && epoch < self.total)
    }

    fn epoch_end(&mut self, r: &EpochRecord) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        let plan = r
            .expected_density
            .map(|e| format!(" (plan {e:.2}%)"))
            .unwrap_or_default();
        let val = r
            .val_accuracy
            .map(|v| format!(" val {v:.2}%"))
            .unwrap_or_default();
        eprintln!(
            "epoch {:>3}/{} {:<8} λ={:<10} density {:>7.3}%{plan} loss {:.4} train {:.2}%{val} test {:.2}% {:.1}s",
            r.epoch,
            self.total,
            r.stage,
            fmt_lambda(r.lambda),
            r.density,
            r.data_loss,
            r.train_accuracy,
            r.test_accuracy,
            r.seconds
        );
    }
}
