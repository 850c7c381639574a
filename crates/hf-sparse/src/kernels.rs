//! Compute kernels: sparse x vector, sparse x dense batch, dense matvec / matmul, with bias and
//! activation fused into the output write.
//!
//! Layouts and choices (measured on a 2-core AMD EPYC, LeNet-300-100 at 98% sparsity):
//! * **sparse, batch 1**: [`Sell8`] (rows sorted by length, grouped eight at a time, stored
//!   column-by-column), so one SIMD FMA advances eight rows and no horizontal sums are needed;
//!   `x` is gathered with scalar loads (faster than `vgatherdps` here). This beat plain CSR
//!   (per-row loops mispredict on varying row lengths) by ~1.6x. The portable fallback is CSR.
//! * **sparse, batched**: feature-major activations (`features x batch`, i.e. `X^T`), computing
//!   `Y^T = act(W · X^T + b)`: every nonzero `W[r, c]` does a contiguous axpy
//!   `Y^T[r, :] += W[r, c] · X^T[c, :]` over the batch, with a tile of up to 64 outputs of the
//!   row held in registers. The output is already the next layer's input layout, so a forward
//!   pass transposes only the network's input and its logits.
//! * **dense, batch 1**: row-blocked dot products (four rows share each load of `x`).
//! * **dense, batched**: row-major activations, `matrixmultiply::sgemm` (packed, cache-blocked,
//!   AVX2/FMA micro-kernels).
//!
//! The hot kernels exist twice: a portable version here and, on x86-64, a hand-vectorised
//! AVX2+FMA version in `avx2`, chosen at run time. Work is split across rayon threads only
//! above [`PAR_MIN_WORK`] multiply-adds per layer call, because a fork/join costs several
//! microseconds: more than a whole batch-1 LeNet pass.

use crate::Activation;
use rayon::prelude::*;

/// Multiply-adds in one layer call below which the kernels stay on the calling thread
/// (2^21 ≈ 2.1 M; tune per model with [`Model::with_par_min_work`](crate::Model::with_par_min_work)).
///
/// A call from outside the rayon pool hands its pieces to pool workers and sleeps until they
/// finish, which costs from a few microseconds (idle machine) to tens of microseconds when the
/// workers must be woken or share their cores. On the shared 2-core machine this was tuned on,
/// splitting LeNet-300-100 layers of 0.3–1.2 M multiply-adds (sparse, batch 64–256) was
/// 1.3–3x *slower* than staying serial while other processes were busy; the dense batched
/// layers (15 M multiply-adds at batch 64) gained when the machine was otherwise idle (≈0.31 ms
/// vs ≈0.46 ms serial per batch) and lost when it was busy. Both paths use the same threshold,
/// so sparse-vs-dense comparisons stay fair.
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
}

/// A compressed-sparse-row matrix. Invariants (checked by [`Csr::from_parts`]): `row_ptr` has
/// `rows + 1` entries, starts at 0, is non-decreasing and ends at `nnz`; column indices are
/// `< cols` and strictly increasing within each row; values are finite.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Csr {
    pub rows: usize,
    pub cols: usize,
    pub row_ptr: Vec<usize>,
    pub col_idx: Vec<u32>,
    pub values: Vec<f32>,
}

impl Csr {
    /// Builds the CSR of a dense row-major `rows x cols` matrix keeping the entries for which
    /// `keep(index)` holds (zeros included if kept).
    pub(crate) fn from_dense_where(
        rows: usize,
        cols: usize,
        dense: &[f32],
        keep: impl Fn(usize) -> bool,
    ) -> Csr {
        let mut row_ptr = Vec::with_capacity(rows + 1);
        let mut col_idx = Vec::new();
        let mut values = Vec::new();
        row_ptr.push(0);
        for r in 0..rows {
            for c in 0..cols {
                let i = r * cols + c;
                if keep(i) {
                    col_idx.push(c as u32);
                    values.push(dense[i]);
                }
            }
            row_ptr.push(values.len());
        }
        Csr {
            rows,
            cols,
            row_ptr,
            col_idx,
            values,
        }
    }

    /// Validates raw parts and builds the matrix; the error names the first violation.
    pub(crate) fn from_parts(
        rows: usize,
        cols: usize,
        row_ptr: Vec<usize>,
        col_idx: Vec<u32>,
        values: Vec<f32>,
    ) -> Result<Csr, String> {
        let nnz = values.len();
        if col_idx.len() != nnz {
            return Err(format!(
                "col_idx has {} entries but values has {nnz}",
                col_idx.len()
            ));
        }
        if row_ptr.len() != rows + 1 {
            return Err(format!(
                "row_ptr has {} entries, expected out_features + 1 = {}",
                row_ptr.len(),
                rows + 1
            ));
        }
        if row_ptr[0] != 0 {
            return Err(format!("row_ptr[0] = {} (must start at 0)", row_ptr[0]));
        }
        for r in 0..rows {
            if row_ptr[r + 1] < row_ptr[r] {
                return Err(format!(
                    "row_ptr is not monotone: row_ptr[{}] = {} < row_ptr[{r}] = {}",
                    r + 1,
                    row_ptr[r + 1],
                    row_ptr[r]
                ));
            }
        }
        if row_ptr[rows] != nnz {
            return Err(format!(
                "row_ptr ends at {} but there are {nnz} values (must end at nnz)",
                row_ptr[rows]
            ));
        }
        for r in 0..rows {
            let mut prev: Option<u32> = None;
            for (k, &c) in col_idx
                .iter()
                .enumerate()
                .take(row_ptr[r + 1])
                .skip(row_ptr[r])
            {
                if c as usize >= cols {
                    return Err(format!(
                        "col_idx[{k}] = {c} out of bounds (in_features {cols})"
                    ));
                }
                if let Some(p) = prev {
                    if c <= p {
                        return Err(format!(
                            "col_idx[{k}] = {c} in row {r} is not greater than the previous index {p} (unsorted or duplicate)"
                        ));
                    }
                }
                prev = Some(c);
            }
        }
        if let Some(k) = values.iter().position(|v| !v.is_finite()) {
            return Err(format!("values[{k}] = {} is not finite", values[k]));
        }
        Ok(Csr {
            rows,
            cols,
            row_ptr,
            col_idx,
            values,
        })
    }

    /// Number of stored entries.
    pub(crate) fn nnz(&self) -> usize {
        self.values.len()
    }

    /// The dense row-major matrix (zeros where absent).
    pub(crate) fn to_dense(&self) -> Vec<f32> {
        let mut d = vec![0.0f32; self.rows * self.cols];
        for r in 0..self.rows {
            for k in self.row_ptr[r]..self.row_ptr[r + 1] {
                d[r * self.cols + self.col_idx[k] as usize] = self.values[k];
            }
        }
        d
    }

    /// Splits the rows into at most `pieces` contiguous ranges with about equal nnz.
    pub(crate) fn balanced_row_splits(&self, pieces: usize) -> Vec<usize> {
        let mut bounds = vec![0usize];
        let nnz = self.nnz();
        for p in 1..pieces {
            let target = nnz * p / pieces;
            // first row whose start is >= target
            let r = self.row_ptr.partition_point(|&x| x < target).min(self.rows);
            let last = *bounds.last().unwrap_or(&0);
            if r > last && r < self.rows {
                bounds.push(r);
            }
        }
        bounds.push(self.rows);
        bounds
    }
}

// ---------------------------------------------------------------------------------------------
// Sparse x vector
// ---------------------------------------------------------------------------------------------

fn spmv_body(a: &Csr, r0: usize, x: &[f32], bias: Option<&[f32]>, act: Activation, y: &mut [f32]) {
    for (i, out) in y.iter_mut().enumerate() {
        let r = r0 + i;
        let (s, e) = (a.row_ptr[r], a.row_ptr[r + 1]);
        let cols = &a.col_idx[s..e];
        let vals = &a.values[s..e];
        let mut acc = [0.0f32; 4];
        let mut cc = cols.chunks_exact(4);
        let mut vc = vals.chunks_exact(4);
        for (c4, v4) in (&mut cc).zip(&mut vc) {
            for k in 0..4 {
                acc[k] += v4[k] * x[c4[k] as usize];
            }
        }
        for (c, v) in cc.remainder().iter().zip(vc.remainder()) {
            acc[0] += *v * x[*c as usize];
        }
        let mut sum = (acc[0] + acc[1]) + (acc[2] + acc[3]);
        if let Some(b) = bias {
            sum += b[r];
        }
        *out = act.apply(sum);
    }
}

/// Portable CSR `y = act(A x + b)`, `x.len() == a.cols`, `y.len() == a.rows` (the batch-1
/// kernel where AVX2 is missing; with AVX2 the model uses [`sell8_mv`]).
pub(crate) fn spmv(
    exec: Exec,
    a: &Csr,
    x: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
) {
    debug_assert_eq!(x.len(), a.cols);
    debug_assert_eq!(y.len(), a.rows);
    let pieces = exec.pieces(a.nnz(), a.rows);
    if pieces == 1 {
        spmv_body(a, 0, x, bias, act, y);
        return;
    }
    let bounds = a.balanced_row_splits(pieces);
    let chunks = split_by_bounds(y, &bounds, 1);
    chunks.into_par_iter().for_each(|(r0, ych)| {
        spmv_body(a, r0, x, bias, act, ych);
    });
}

/// Splits `y` (rows of `width` values) at the row bounds, returning `(first_row, chunk)`.
pub(crate) fn split_by_bounds<'y>(
    mut y: &'y mut [f32],
    bounds: &[usize],
    width: usize,
) -> Vec<(usize, &'y mut [f32])> {
    let mut out = Vec::with_capacity(bounds.len());
    for w in bounds.windows(2) {
        let (head, tail) = y.split_at_mut((w[1] - w[0]) * width);
        out.push((w[0], head));
        y = tail;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Sparse x dense batch (feature-major)
// ---------------------------------------------------------------------------------------------

/// Batch columns handled per register tile in the batched sparse kernel.
const TILE: usize = 32;

/// One tile of `T` batch columns of one output row: `out[t] = act(b + sum_k v_k xt[c_k, j + t])`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn spmm_tile<const T: usize>(
    cols: &[u32],
    vals: &[f32],
    xt: &[f32],
    batch: usize,
    j: usize,
    b: f32,
    act: Activation,
    out: &mut [f32],
) {
    let mut acc = [0.0f32; T];
    for (&c, &v) in cols.iter().zip(vals) {
        let off = c as usize * batch + j;
        let xr = &xt[off..off + T];
        for t in 0..T {
            acc[t] += v * xr[t];
        }
    }
    for (o, a) in out[..T].iter_mut().zip(acc) {
        *o = act.apply(a + b);
    }
}

#[allow(clippy::too_many_arguments)]
fn spmm_t_body(
    a: &Csr,
    r0: usize,
    xt: &[f32],
    batch: usize,
    bias: Option<&[f32]>,
    act: Activation,
    yt: &mut [f32],
) {
    for (i, yrow) in yt.chunks_exact_mut(batch).enumerate() {
        let r = r0 + i;
        let (s, e) = (a.row_ptr[r], a.row_ptr[r + 1]);
        let cols = &a.col_idx[s..e];
        let vals = &a.values[s..e];
        let b = bias.map_or(0.0, |b| b[r]);
        let mut j = 0;
        while j + TILE <= batch {
            spmm_tile::<TILE>(cols, vals, xt, batch, j, b, act, &mut yrow[j..]);
            j += TILE;
        }
        while j + 8 <= batch {
            spmm_tile::<8>(cols, vals, xt, batch, j, b, act, &mut yrow[j..]);
            j += 8;
        }
        while j < batch {
            spmm_tile::<1>(cols, vals, xt, batch, j, b, act, &mut yrow[j..]);
            j += 1;
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn spmm_t_rows(
    isa: Isa,
    a: &Csr,
    r0: usize,
    xt: &[f32],
    batch: usize,
    bias: Option<&[f32]>,
    act: Activation,
    yt: &mut [f32],
) {
    match isa {
        Isa::Generic => spmm_t_body(a, r0, xt, batch, bias, act, yt),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: Avx2Fma only exists after run-time detection; lengths and CSR invariants as
        // documented in `avx2`.
        Isa::Avx2Fma => unsafe { crate::avx2::spmm_t_rows(a, r0, xt, batch, bias, act, yt) },
    }
}

/// `Y^T = act(A · X^T + b)` on feature-major activations: `xt` is `a.cols x batch`, `yt` is
/// `a.rows x batch`, both row-major.
pub(crate) fn spmm_t(
    exec: Exec,
    a: &Csr,
    xt: &[f32],
    batch: usize,
    bias: Option<&[f32]>,
    act: Activation,
    yt: &mut [f32],
) {
    debug_assert_eq!(xt.len(), a.cols * batch);
    debug_assert_eq!(yt.len(), a.rows * batch);
    if batch == 0 {
        return;
    }
    let pieces = exec.pieces(a.nnz().saturating_mul(batch), a.rows);
    if pieces == 1 {
        spmm_t_rows(exec.isa, a, 0, xt, batch, bias, act, yt);
        return;
    }
    let bounds = a.balanced_row_splits(pieces);
    let chunks = split_by_bounds(yt, &bounds, batch);
    chunks.into_par_iter().for_each(|(r0, ych)| {
        spmm_t_rows(exec.isa, a, r0, xt, batch, bias, act, ych);
    });
}

// ---------------------------------------------------------------------------------------------
// Dense
// ---------------------------------------------------------------------------------------------

/// Lanes of independent accumulators in the dense dot product.
const DOT_LANES: usize = 32;

#[inline(always)]
fn dot(w: &[f32], x: &[f32]) -> f32 {
    let mut acc = [0.0f32; DOT_LANES];
    let mut wc = w.chunks_exact(DOT_LANES);
    let mut xc = x.chunks_exact(DOT_LANES);
    for (wl, xl) in (&mut wc).zip(&mut xc) {
        for k in 0..DOT_LANES {
            acc[k] += wl[k] * xl[k];
        }
    }
    let (wr, xr) = (wc.remainder(), xc.remainder());
    let mut acc8 = [0.0f32; 8];
    let mut wc8 = wr.chunks_exact(8);
    let mut xc8 = xr.chunks_exact(8);
    for (wl, xl) in (&mut wc8).zip(&mut xc8) {
        for k in 0..8 {
            acc8[k] += wl[k] * xl[k];
        }
    }
    for (a, b) in wc8.remainder().iter().zip(xc8.remainder()) {
        acc8[0] += *a * *b;
    }
    // pairwise reduction of the lanes
    let mut width = DOT_LANES;
    while width > 8 {
        width /= 2;
        for k in 0..width {
            acc[k] += acc[k + width];
        }
    }
    for k in 0..8 {
        acc[k] += acc8[k];
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

#[allow(clippy::too_many_arguments)]
fn matvec_body(
    w: &[f32],
    cols: usize,
    r0: usize,
    x: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
) {
    for (i, out) in y.iter_mut().enumerate() {
        let r = r0 + i;
        let mut s = dot(&w[r * cols..(r + 1) * cols], x);
        if let Some(b) = bias {
            s += b[r];
        }
        *out = act.apply(s);
    }
}

#[allow(clippy::too_many_arguments)]
fn matvec_rows(
    isa: Isa,
    w: &[f32],
    cols: usize,
    r0: usize,
    x: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
) {
    match isa {
        Isa::Generic => matvec_body(w, cols, r0, x, bias, act, y),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: Avx2Fma only exists after run-time detection; `w` is rows x cols, `x` has
        // `cols` values and `y` covers rows r0.. of `w`.
        Isa::Avx2Fma => unsafe { crate::avx2::matvec_rows(w, cols, r0, x, bias, act, y) },
    }
}

/// Dense `y = act(W x + b)` with `W` row-major `rows x cols`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matvec(
    exec: Exec,
    w: &[f32],
    rows: usize,
    cols: usize,
    x: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
) {
    debug_assert_eq!(w.len(), rows * cols);
    debug_assert_eq!(x.len(), cols);
    debug_assert_eq!(y.len(), rows);
    let pieces = exec.pieces(rows * cols, rows);
    if pieces == 1 {
        matvec_rows(exec.isa, w, cols, 0, x, bias, act, y);
        return;
    }
    let per = rows.div_ceil(pieces);
    y.par_chunks_mut(per).enumerate().for_each(|(p, ych)| {
        matvec_rows(exec.isa, w, cols, p * per, x, bias, act, ych);
    });
}

/// Dense batched `Y = act(X W^T + b)`: `x` is `batch x cols`, `y` is `batch x rows`,
/// row-major; `W` row-major `rows x cols`. The product is `matrixmultiply::sgemm`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul(
    exec: Exec,
    w: &[f32],
    rows: usize,
    cols: usize,
    x: &[f32],
    batch: usize,
    bias: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
) {
    debug_assert_eq!(w.len(), rows * cols);
    debug_assert_eq!(x.len(), batch * cols);
    debug_assert_eq!(y.len(), batch * rows);
    if batch == 0 || rows == 0 {
        return;
    }
    let work = rows.saturating_mul(cols).saturating_mul(batch);
    let pieces = exec.pieces(work, batch);
    let per = batch.div_ceil(pieces);
    let run = |b0: usize, ych: &mut [f32]| {
        let nb = ych.len() / rows;
        gemm_chunk(
            w,
            rows,
            cols,
            &x[b0 * cols..(b0 + nb) * cols],
            nb,
            bias,
            act,
            ych,
        );
    };
    if pieces == 1 {
        run(0, y);
    } else {
        y.par_chunks_mut(per * rows)
            .enumerate()
            .for_each(|(p, ych)| run(p * per, ych));
    }
}

#[allow(clippy::too_many_arguments)]
fn gemm_chunk(
    w: &[f32],
    rows: usize,
    cols: usize,
    x: &[f32],
    batch: usize,
    bias: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
) {
    match bias {
        Some(b) => {
            for yr in y.chunks_exact_mut(rows) {
                yr.copy_from_slice(b);
            }
        }
        None => y.fill(0.0),
    }
    if cols > 0 {
        // SAFETY: the pointers cover exactly `batch x cols` (x), `cols x rows` viewed through
        // strides over `rows x cols` (w) and `batch x rows` (y) elements, as asserted by the
        // callers' length checks; `y` does not alias `x` or `w`.
        unsafe {
            matrixmultiply::sgemm(
                batch,
                cols,
                rows,
                1.0,
                x.as_ptr(),
                cols as isize,
                1,
                w.as_ptr(),
                1,
                cols as isize,
                1.0,
                y.as_mut_ptr(),
                rows as isize,
                1,
            );
        }
    }
    act.apply_all(y);
}

/// Transposes the row-major `rows x cols` matrix `src` into `dst` (`cols x rows`).
pub(crate) fn transpose(isa: Isa, src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    debug_assert_eq!(src.len(), rows * cols);
    debug_assert_eq!(dst.len(), rows * cols);
    match isa {
        Isa::Generic => transpose_generic(src, rows, cols, dst),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: Avx2Fma only exists after run-time detection; both slices hold rows x cols.
        Isa::Avx2Fma => unsafe { crate::avx2::transpose(src, rows, cols, dst) },
    }
}

/// Portable transpose in cache blocks.
fn transpose_generic(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    const B: usize = 16;
    for r0 in (0..rows).step_by(B) {
        let r1 = (r0 + B).min(rows);
        for c0 in (0..cols).step_by(B) {
            let c1 = (c0 + B).min(cols);
            for r in r0..r1 {
                let srow = &src[r * cols..];
                for c in c0..c1 {
                    dst[c * rows + r] = srow[c];
                }
            }
        }
    }
}

/// A sparse matrix in SELL-8 layout (sliced ELLPACK, slice height 8, rows sorted by length):
/// rows are grouped eight at a time and each group is stored column-by-column, padded to its
/// longest row, so a batch-1 kernel handles eight rows per SIMD step without horizontal sums.
/// Sorting by length keeps padding small. Built from a [`Csr`] for the batch-1 AVX2 path; the
/// bias is folded in (permuted) so the kernel starts from it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Sell8 {
    /// Rows of the matrix.
    pub rows: usize,
    /// `perm[slot]` = the original row computed in that slot.
    pub perm: Vec<u32>,
    /// Group offsets per chunk of eight slots: chunk `c` owns groups
    /// `chunk_ptr[c]..chunk_ptr[c + 1]`; group `g`'s eight lanes live at `g*8..g*8+8`.
    pub chunk_ptr: Vec<usize>,
    /// Column index per lane; padding lanes hold `cols`, the index of the zero the caller
    /// appends to `x`.
    pub col: Vec<u32>,
    /// Value per lane (0 for padding).
    pub val: Vec<f32>,
    /// Bias per slot (0 for no bias and for padding slots), `chunks * 8` long.
    pub bias: Vec<f32>,
}

impl Sell8 {
    /// Converts a CSR matrix (and optional bias).
    pub(crate) fn from_csr(a: &Csr, bias: Option<&[f32]>) -> Sell8 {
        let len = |r: usize| a.row_ptr[r + 1] - a.row_ptr[r];
        let pad = a.cols as u32;
        let mut order: Vec<usize> = (0..a.rows).collect();
        order.sort_by_key(|&r| std::cmp::Reverse(len(r)));
        let chunks = a.rows.div_ceil(8);
        let mut chunk_ptr = Vec::with_capacity(chunks + 1);
        chunk_ptr.push(0);
        let mut col = Vec::new();
        let mut val = Vec::new();
        let mut sbias = vec![0.0f32; chunks * 8];
        for ch in 0..chunks {
            let slots = &order[ch * 8..((ch + 1) * 8).min(a.rows)];
            let width = slots.iter().map(|&r| len(r)).max().unwrap_or(0);
            for g in 0..width {
                for lane in 0..8 {
                    match slots.get(lane) {
                        Some(&r) if g < len(r) => {
                            let k = a.row_ptr[r] + g;
                            col.push(a.col_idx[k]);
                            val.push(a.values[k]);
                        }
                        _ => {
                            col.push(pad);
                            val.push(0.0);
                        }
                    }
                }
            }
            for (lane, &r) in slots.iter().enumerate() {
                sbias[ch * 8 + lane] = bias.map_or(0.0, |b| b[r]);
            }
            chunk_ptr.push(chunk_ptr[ch] + width);
        }
        Sell8 {
            rows: a.rows,
            perm: order.into_iter().map(|r| r as u32).collect(),
            chunk_ptr,
            col,
            val,
            bias: sbias,
        }
    }

    /// Stored lanes including padding (the work the kernel does).
    #[cfg(test)]
    pub(crate) fn lanes(&self) -> usize {
        self.col.len()
    }
}

/// Portable SELL-8 x vector over chunks `c0..c1`, lane by lane (reference for the AVX2
/// kernel). `x` has `cols + 1` values, the last 0.
fn sell8_mv_generic(s: &Sell8, c0: usize, c1: usize, x: &[f32], act: Activation, y: &mut [f32]) {
    for ch in c0..c1 {
        let mut acc = [0.0f32; 8];
        acc.copy_from_slice(&s.bias[ch * 8..ch * 8 + 8]);
        for g in s.chunk_ptr[ch]..s.chunk_ptr[ch + 1] {
            for (lane, a) in acc.iter_mut().enumerate() {
                *a += s.val[g * 8 + lane] * x[s.col[g * 8 + lane] as usize];
            }
        }
        for (lane, a) in acc.iter().enumerate() {
            if let Some(&r) = s.perm.get(ch * 8 + lane) {
                y[r as usize] = act.apply(*a);
            }
        }
    }
}

/// A raw output pointer shared by threads that write disjoint elements.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);
// SAFETY: only used by `sell8_mv`, whose threads write disjoint rows (`perm` is a permutation
// and the chunk ranges do not overlap).
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

/// `y = act(A x + b)` from the SELL-8 form (bias folded in). `x_pad` is the input followed by
/// one 0 (`cols + 1` values), the target of padding lanes. Multi-threaded over chunks for
/// large layers.
pub(crate) fn sell8_mv(exec: Exec, s: &Sell8, x_pad: &[f32], act: Activation, y: &mut [f32]) {
    debug_assert_eq!(y.len(), s.rows);
    debug_assert_eq!(x_pad.last(), Some(&0.0));
    debug_assert!(s.col.iter().all(|&c| (c as usize) < x_pad.len()));
    let chunks = s.chunk_ptr.len() - 1;
    let run = |c0: usize, c1: usize, out: SharedOut| match exec.isa {
        Isa::Generic => {
            // SAFETY: `out` points at `y`, which outlives this call; in the parallel case the
            // ranges write disjoint rows, but the portable kernel needs a slice, so it only
            // runs single-threaded (see below).
            let y = unsafe { std::slice::from_raw_parts_mut(out.0, s.rows) };
            sell8_mv_generic(s, c0, c1, x_pad, act, y)
        }
        #[cfg(target_arch = "x86_64")]
        // SAFETY: Avx2Fma only exists after run-time detection; `s` was built from a valid Csr
        // (columns < cols, padding = cols) and `x_pad` has cols + 1 values; `out` covers
        // `s.rows` values and concurrent calls write disjoint rows.
        Isa::Avx2Fma => unsafe { crate::avx2::sell8_mv(s, c0, c1, x_pad, act, out.0) },
    };
    let out = SharedOut(y.as_mut_ptr());
    let pieces = if exec.isa == Isa::Generic {
        1
    } else {
        exec.pieces(s.col.len(), chunks)
    };
    if pieces == 1 {
        run(0, chunks, out);
        return;
    }
    // split chunks so that each piece has about the same number of lanes
    let total = s.col.len() / 8;
    let mut bounds = vec![0usize];
    for p in 1..pieces {
        let target = total * p / pieces;
        let c = s.chunk_ptr.partition_point(|&g| g < target).min(chunks);
        if c > *bounds.last().unwrap_or(&0) && c < chunks {
            bounds.push(c);
        }
    }
    bounds.push(chunks);
    bounds.par_windows(2).for_each(|w| run(w[0], w[1], out));
}
