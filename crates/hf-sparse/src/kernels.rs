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
//! AVX2+FMA version in `avx2`, chosen at run time (see `dispatch`); the matrix formats are in
//! `formats`. Work is split across rayon threads only above
//! [`PAR_MIN_WORK`](crate::PAR_MIN_WORK) multiply-adds per layer call, because a fork/join
//! costs several microseconds: more than a whole batch-1 LeNet pass.

use crate::dispatch::{Exec, Isa};
use crate::formats::{Csr, Sell8};
use crate::model::with_scratch;
use crate::Activation;
use rayon::prelude::*;

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

/// A sparse linear map on batch-major activations, `y = act(x·A^T + b)` (`x`: `batch x a.cols`,
/// `y`: `batch x a.rows`), by the kernel that suits the batch: up to
/// [`PER_EXAMPLE_MAX_BATCH`](crate::PER_EXAMPLE_MAX_BATCH) examples one by one on the SELL-8
/// kernel (`sell`: `a` with `bias` folded in; CSR where it or AVX2 is missing), larger batches
/// on the feature-major kernel, transposed in and out through per-thread scratch. What a linear
/// layer of a graph and a lowered convolution run.
#[allow(clippy::too_many_arguments)]
pub(crate) fn sparse_linear(
    exec: Exec,
    a: &Csr,
    sell: Option<&Sell8>,
    bias: Option<&[f32]>,
    x: &[f32],
    batch: usize,
    act: Activation,
    y: &mut [f32],
) {
    let (rows, cols) = (a.rows, a.cols);
    debug_assert_eq!(x.len(), batch * cols);
    debug_assert_eq!(y.len(), batch * rows);
    match sell {
        Some(sell) if batch <= crate::PER_EXAMPLE_MAX_BATCH && exec.isa != Isa::Generic => {
            // the SELL-8 kernel reads x[cols] (a 0) for its padding lanes
            with_scratch(cols + 1, |xp| {
                for (xe, ye) in x.chunks_exact(cols).zip(y.chunks_exact_mut(rows)) {
                    xp[..cols].copy_from_slice(xe);
                    xp[cols] = 0.0;
                    sell8_mv(exec, sell, xp, act, ye);
                }
            })
        }
        _ if batch == 1 => spmv(exec, a, x, bias, act, y),
        _ => with_scratch(batch * (cols + rows), |buf| {
            let (xt, yt) = buf.split_at_mut(batch * cols);
            transpose(exec.isa, x, batch, cols, xt);
            spmm_t(exec, a, xt, batch, bias, act, yt);
            transpose(exec.isa, yt, rows, batch, y);
        }),
    }
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

// ---------------------------------------------------------------------------------------------
// Sparse x vector, SELL-8
// ---------------------------------------------------------------------------------------------

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
