//! How kernels run: the instruction set picked at run time from the CPU's features ([`Isa`]) and
//! the threading threshold ([`Exec`], [`PAR_MIN_WORK`]). Every kernel with a hand-vectorised
//! twin in `avx2` dispatches on [`Exec::isa`]; `Isa::Avx2Fma` exists only after run-time
//! detection, which is what makes calling the AVX2 kernels sound.

/// Multiply-adds in one layer call below which the kernels stay on the calling thread
/// (2^21 ≈ 2.1 M; tune per model with [`Model::with_par_min_work`](crate::Model::with_par_min_work)).
///
/// A call from outside the rayon pool hands its pieces to pool workers and sleeps until they
/// finish, which costs from a few microseconds (idle machine) to tens of microseconds when the
/// workers must be woken or share their cores. On the shared 2-core machine this was tuned on,
/// splitting LeNet-300-100 layers of 0.3–1.2 M multiply-adds (sparse, batch 64–256) was
/// 1.3–3x *slower* than staying serial while other processes were busy; the dense batched
/// layers (15 M multiply-adds at batch 64) gained when the machine was otherwise idle (≈0.31 ms
/// vs ≈0.46 ms serial per batch) and lost when it was busy. On a quiet 16-core Xeon
/// (`results/infer/xeon16/par-sweep.txt`) a threshold of 128 k let vgg-narrow at 95% use a
/// second thread at batch 32 (1.83 → 1.42 ms) and doubled LeNet-300-100's batch-64 time
/// (35 → 77 µs); 512 k was between. Both paths use the same threshold, so sparse-vs-dense
/// comparisons stay fair.
pub const PAR_MIN_WORK: usize = 1 << 21;

/// Instruction set a kernel is compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Isa {
    /// Portable code (SSE2 on x86-64).
    Generic,
    /// AVX2 + FMA, selected at run time when the CPU has both.
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
}

impl Isa {
    /// The best instruction set this CPU supports.
    pub(crate) fn best() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Isa::Avx2Fma;
            }
        }
        Isa::Generic
    }

    /// Every instruction set usable on this CPU (for tests).
    #[cfg(test)]
    pub(crate) fn all_available() -> Vec<Isa> {
        let mut v = vec![Isa::Generic];
        #[cfg(target_arch = "x86_64")]
        if Isa::best() == Isa::Avx2Fma {
            v.push(Isa::Avx2Fma);
        }
        v
    }
}

/// How kernels run: instruction set and the threading threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Exec {
    pub isa: Isa,
    /// Multiply-adds below which a call stays single-threaded.
    pub par_min_work: usize,
}

impl Exec {
    /// Best ISA, default threading threshold.
    pub(crate) fn auto() -> Exec {
        Exec {
            isa: Isa::best(),
            par_min_work: PAR_MIN_WORK,
        }
    }

    /// Number of pieces to split `work` multiply-adds into.
    pub(crate) fn pieces(&self, work: usize, max_pieces: usize) -> usize {
        if work < self.par_min_work || max_pieces < 2 {
            return 1;
        }
        let threads = rayon::current_num_threads();
        if threads < 2 {
            return 1;
        }
        threads.min(max_pieces)
    }

    /// Number of sub-batches to split a whole forward call of `work` multiply-adds on
    /// `batch` examples into, one per thread. Sub-batches share nothing but the read-only
    /// weights and cost one fork/join per call instead of one per layer, so they start at a
    /// fraction of the per-layer threshold (`par_min_work / BATCH_SPLIT_SHARE`).
    pub(crate) fn batch_pieces(&self, work: usize, batch: usize) -> usize {
        self.pieces(work.saturating_mul(BATCH_SPLIT_SHARE), batch)
    }
}

/// A whole forward call is split into sub-batches from `par_min_work / BATCH_SPLIT_SHARE`
/// multiply-adds (1 M by default). On the 2-core development machine splitting LeNet-300-100
/// at 98% at batch 64 (0.34 M) gained under 4% (23.2 against 24.1 µs, best per call, within the
/// machine's noise): the second thread's wake-up costs about what half the work saves.
pub const BATCH_SPLIT_SHARE: usize = 2;
