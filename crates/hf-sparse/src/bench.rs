//! Timing helpers: median wall-clock time, and sparse-vs-dense inference measurements.

use crate::spec::Format;
use crate::Model;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Calls `f` `warmup` times untimed, then `runs` times (at least once) timing each call, and
/// returns the median (mean of the two middle samples for an even count). The median resists
/// the outliers a shared machine produces.
pub fn median_time<F: FnMut()>(mut f: F, warmup: usize, runs: usize) -> Duration {
    for _ in 0..warmup {
        f();
    }
    let times: Vec<Duration> = (0..runs.max(1))
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    median(times)
}

/// The median of `v` (mean of the two middle values for an even count; `v` not empty).
fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2
    }
}

/// Median time of one call of `f` over `runs` samples: a short probe decides how many calls
/// one sample repeats (samples of about 300 µs, so the clock's resolution and overhead do not
/// matter for microsecond calls), then the median sample is divided by that count.
pub fn measure_call<F: FnMut()>(mut f: F, runs: usize) -> Duration {
    measure_interleaved(&mut [&mut |n| time_calls(&mut f, n)], runs, Stat::Median)[0]
}

/// Wall time of `n` calls of `f`.
pub fn time_calls(f: &mut dyn FnMut(), n: u32) -> Duration {
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    t.elapsed()
}

/// How a measurement's samples become one time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Stat {
    /// The median sample: what a typical call costs, outliers ignored.
    #[default]
    Median,
    /// The fastest sample: the least disturbed by other processes, the steadier figure on a
    /// shared machine.
    Min,
}

/// Times several calls against each other. Each sampler runs its call `n` times and returns
/// the wall time of those calls (so a call that must run on another thread pool can hand over
/// outside the timed part). Each is probed for how many calls one sample repeats (samples of
/// about 300 µs), then `runs` rounds take one sample of every sampler in turn, each after one
/// untimed call that warms the caches again and after the process's threads are idle
/// ([`settle`]; with more than one sampler): a burst of load from other processes falls on
/// all of them alike, so their ratios move less than when each is timed in a block of its own.
/// Returns the time of one call of each (the `stat` of its samples over its repeat count), in
/// the order given.
pub fn measure_interleaved(
    samplers: &mut [&mut dyn FnMut(u32) -> Duration],
    runs: usize,
    stat: Stat,
) -> Vec<Duration> {
    let reps: Vec<u32> = samplers
        .iter_mut()
        .map(|f| {
            let probe = median((0..5).map(|_| f(1)).collect());
            if probe.is_zero() {
                1000
            } else {
                (SAMPLE_TARGET.as_nanos() / probe.as_nanos().max(1)).clamp(1, 100_000) as u32
            }
        })
        .collect();
    let several = samplers.len() > 1;
    let mut samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(runs.max(1)); samplers.len()];
    for _ in 0..runs.max(1) {
        for ((f, &n), out) in samplers.iter_mut().zip(&reps).zip(&mut samples) {
            if several {
                settle();
            }
            // one untimed call first: the previous sampler's calls have evicted this one's
            // weights and buffers from the caches (a deployed model called over and over
            // stays warm, and so should each sample)
            f(1);
            out.push(f(n) / n);
        }
    }
    samples
        .into_iter()
        .map(|v| match stat {
            Stat::Min => v.into_iter().min().unwrap_or_default(),
            Stat::Median => median(v),
        })
        .collect()
}

/// Waits until no other thread of this process is running or runnable (at most
/// [`SETTLE_MAX`]): a runtime's worker threads may go on spinning after its call returns (ONNX
/// Runtime's intra-op threads spin for milliseconds by default), and a sample taken meanwhile
/// runs with a core taken. On the 2-core development machine that hid every gain of a second
/// thread from the columns sampled after ONNX Runtime (vgg-narrow batch 8, 2 threads, own dense
/// path: 2.9–3.9 ms, the same as on 1 thread; 1.9 ms with ONNX Runtime left out). Reads each
/// thread's state from `/proc/self/task/*/stat` (its run time there is only updated on
/// scheduler ticks, too late to see a spinning thread); where that is not readable it returns
/// at once.
pub fn settle() {
    // the usual case, nothing else running, costs one look and no sleep (a sleep lets the
    // core idle, and the sample after it would start on a cooled-down core)
    if others_running() != Some(true) {
        return;
    }
    let t0 = Instant::now();
    let mut quiet = 0;
    while quiet < 2 && t0.elapsed() < SETTLE_MAX {
        std::thread::sleep(SETTLE_POLL);
        match others_running() {
            Some(true) => quiet = 0,
            Some(false) => quiet += 1,
            None => return,
        }
    }
}

/// How often [`settle`] looks at the threads' states.
pub const SETTLE_POLL: Duration = Duration::from_micros(200);

/// The longest [`settle`] waits. ONNX Runtime 1.31's intra-op threads went idle 37–44 ms
/// after its last call on the development machine (a spin of 2^20 pause instructions).
pub const SETTLE_MAX: Duration = Duration::from_millis(100);

/// Whether a thread of this process other than the calling one is running or waiting for a
/// core (state `R` in `/proc/self/task/*/stat`); `None` where that is not readable.
fn others_running() -> Option<bool> {
    let me = std::fs::read_link("/proc/thread-self").ok()?;
    let me = me.file_name()?.to_owned();
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let task = task.ok()?;
        if task.file_name() == me {
            continue;
        }
        // a thread that exited between the listing and the read is not running
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // "tid (name) S ...": the state follows the last ')' (a name may hold one)
        let state = stat.rsplit_once(')')?.1.trim_start().chars().next()?;
        if state == 'R' {
            return Some(true);
        }
    }
    Some(false)
}

/// A model prepared for timing on both paths, with a fixed random input (uniform in [0, 1),
/// like normalised pixels).
#[derive(Clone, Debug)]
pub struct InferBench {
    /// The network on the sparse path.
    pub sparse: Model,
    /// The same network on the dense path.
    pub dense: Model,
    input: Vec<f32>,
    max_batch: usize,
}

/// One measurement: the same batch through both paths.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchRow {
    /// Examples per forward call.
    pub batch: usize,
    /// Median time of one sparse forward call (the latency at batch 1).
    pub sparse_time: Duration,
    /// Median time of one dense forward call.
    pub dense_time: Duration,
    /// Examples per second on the sparse path.
    pub sparse_throughput: f64,
    /// Examples per second on the dense path.
    pub dense_throughput: f64,
    /// `dense_time / sparse_time`.
    pub speedup: f64,
    /// Multiply-adds per example on the sparse path.
    pub sparse_macs: u64,
    /// Multiply-adds per example on the dense path.
    pub dense_macs: u64,
}

/// Aim for timed samples of at least this long, repeating fast calls inside one sample so the
/// clock's resolution and overhead do not matter.
const SAMPLE_TARGET: Duration = Duration::from_micros(300);

impl InferBench {
    /// Prepares `model` on both paths with a random input of up to `max_batch` examples.
    pub fn new(model: &Model, max_batch: usize, seed: u64) -> InferBench {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n = model.input_len() * max_batch;
        let input = (0..n).map(|_| rng.gen_range(0.0f32..1.0)).collect();
        InferBench {
            sparse: model.to_sparse(),
            dense: model.to_dense(),
            input,
            max_batch,
        }
    }

    /// Prepares `model` on both paths with given inputs (`input_len` values per example),
    /// repeated as needed to fill `max_batch` examples.
    pub fn with_input(model: &Model, input: Vec<f32>, max_batch: usize) -> InferBench {
        let n = model.input_len() * max_batch;
        let input = if input.is_empty() {
            vec![0.0; n]
        } else {
            input.iter().copied().cycle().take(n).collect()
        };
        InferBench {
            sparse: model.to_sparse(),
            dense: model.to_dense(),
            input,
            max_batch,
        }
    }

    /// The model on the given path.
    pub fn model(&self, path: Format) -> &Model {
        match path {
            Format::Sparse => &self.sparse,
            Format::Dense => &self.dense,
        }
    }

    /// The first `batch` examples of the input (`batch` is capped at the prepared maximum).
    pub fn input(&self, batch: usize) -> &[f32] {
        let b = batch.min(self.max_batch);
        &self.input[..b * self.sparse.input_len()]
    }

    /// One forward call on the given path (what the benchmarks time).
    pub fn run(&self, path: Format, batch: usize) {
        let b = batch.min(self.max_batch);
        let _ = black_box(self.model(path).forward(black_box(self.input(b)), b));
    }

    /// Median time of one forward call over `runs` samples (fast calls are repeated inside a
    /// sample and the time divided; see [`measure_call`]).
    pub fn measure(&self, path: Format, batch: usize, runs: usize) -> Duration {
        measure_call(|| self.run(path, batch), runs)
    }

    /// Measures `batch` on both paths.
    pub fn row(&self, batch: usize, runs: usize) -> BenchRow {
        let b = batch.clamp(1, self.max_batch.max(1));
        let sparse_time = self.measure(Format::Sparse, b, runs);
        let dense_time = self.measure(Format::Dense, b, runs);
        let per_s = |t: Duration| {
            if t.is_zero() {
                f64::INFINITY
            } else {
                b as f64 / t.as_secs_f64()
            }
        };
        let flops = self.sparse.flops();
        BenchRow {
            batch: b,
            sparse_time,
            dense_time,
            sparse_throughput: per_s(sparse_time),
            dense_throughput: per_s(dense_time),
            speedup: dense_time.as_secs_f64() / sparse_time.as_secs_f64().max(1e-12),
            sparse_macs: flops.iter().map(|f| f.sparse_macs).sum(),
            dense_macs: flops.iter().map(|f| f.dense_macs).sum(),
        }
    }
}

/// Latency and throughput of `model` on the sparse and dense paths for each batch size, each
/// the median of `runs` samples.
pub fn bench_model(model: &Model, batches: &[usize], runs: usize) -> Vec<BenchRow> {
    let max = batches.iter().copied().max().unwrap_or(1).max(1);
    let b = InferBench::new(model, max, 0x5eed);
    batches.iter().map(|&n| b.row(n, runs)).collect()
}

/// A plain-text table of bench rows (one line per batch).
pub fn format_rows(rows: &[BenchRow]) -> String {
    let mut s =
        String::from("batch   sparse/call    dense/call  speedup   sparse ex/s    dense ex/s\n");
    for r in rows {
        s.push_str(&format!(
            "{:>5} {:>11.2}µs {:>11.2}µs {:>7.1}x {:>13.0} {:>13.0}\n",
            r.batch,
            r.sparse_time.as_secs_f64() * 1e6,
            r.dense_time.as_secs_f64() * 1e6,
            r.speedup,
            r.sparse_throughput,
            r.dense_throughput
        ));
    }
    s
}
