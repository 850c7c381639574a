//! Convolution, pooling and residual-add kernels, on batch-major `N x C x H x W` tensors (each
//! example's `C x H x W` values contiguous, row-major).
//!
//! * **sparse, direct** ([`SparseConv::Direct`]): one CSR row per output channel
//!   over the flattened `in·kh·kw` weight; every nonzero `(c, dy, dx)` adds `w ·` (the input
//!   plane `c` shifted by `(dy, dx)`) into the output plane, one contiguous axpy per output row
//!   over the valid output columns (for a horizontal stride > 1 the input rows are first split
//!   into their stride phases, so the reads stay contiguous). The output plane stays in L1, no
//!   im2col buffer is written, and pruned weights cost nothing.
//! * **sparse, CSR × im2col** ([`SparseConv::Im2col`]): unfolds the input into the
//!   `in·kh·kw x H_out·W_out` patch matrix once per example, then each nonzero is one axpy of a
//!   whole patch row (full-plane contiguous axpys, fewer loop overheads), but writing the patch
//!   matrix costs `9·C·H·W` stores per 3x3 layer: it wins at ~10% density and loses at ≤5%.
//! * **sparse, shifted** ([`SparseConv::Shifted`], stride 1): a tile of examples is packed
//!   as zero-padded planes one after another, so every nonzero `(c, dy, dx)` is one shifted
//!   read of channel `c` over the whole tile; per strip of 32 positions the output channel's
//!   accumulators stay in registers while its nonzeros stream through, strips outer so what a
//!   strip reads of the input stays in L1. Positions in the padding are computed and dropped
//!   (≈1.3x extra work on 14x14 maps, 2.8x on 3x3), which the long, register-blocked reads
//!   more than pay for: the batch fills the vector dimension even on 7x7 and 3x3 maps.
//!
//! [`SparseConv::Auto`] (the default) picks per layer: shifted for stride 1, else im2col or
//! direct by density (see [`AUTO_IM2COL_DENSITY`]).
//! * **dense**: im2col (skipped for 1x1, stride 1, no padding) + `matrixmultiply::sgemm`.
//!
//! Grouped convolutions (depthwise included) run the same kernels: output channel `o` reads
//! the input planes (or patch rows) of its group, and the dense path does one sgemm per group.
//! Dilation only spaces the taps (`dy·dh`, `dx·dw`) in the shifted-plane and patch offsets.
//!
//! Threads: across examples when the batch is large enough, else across output channels
//! (nnz-balanced), only above [`PAR_MIN_WORK`](crate::PAR_MIN_WORK) multiply-adds per call.

use crate::dispatch::{Exec, Isa};
use crate::formats::Csr;
use crate::graph::Geom;
use crate::kernels::split_by_bounds;
use crate::lowered::{self, Lowered};
use crate::model::with_scratch;
use crate::Activation;
use rayon::prelude::*;

/// Which kernel the sparse path runs for convolutions (see
/// [`Model::with_sparse_conv`](crate::Model::with_sparse_conv)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum SparseConv {
    /// Per layer: lowered where that measured faster (`lowered.rs`: strided layers from
    /// batch [`LOWERED_MIN_BATCH`](crate::LOWERED_MIN_BATCH) and sparse strided ones at any
    /// batch; stride-1 planes up to 3x3 at any batch, up to 7x7 — 14x14 at 10% density or
    /// less — from that batch); else shifted for stride-1 layers (measured fastest on
    /// `vgg-narrow` at 95%, batch 1 to 32, and on a ResNet-20 layer at 90–95%; at 98% and
    /// batch 1 the direct kernel measured faster on that layer, which this rule does not yet
    /// pick); for strided layers CSR × im2col where it measured faster — layers keeping at
    /// least [`AUTO_IM2COL_DENSITY`] of their weights — else direct. The default.
    #[default]
    Auto,
    /// Direct sparse convolution: each nonzero adds a shifted input plane into its output
    /// plane (no unfolding). Fastest measured at 95–98% sparsity.
    Direct,
    /// CSR × im2col: unfold the input into the patch matrix, then each nonzero adds one patch
    /// row.
    Im2col,
    /// Shifted whole-tile axpys (stride 1 only; other layers fall back to `Auto`'s choice): a
    /// tile of examples is packed as zero-padded planes, and each nonzero adds its input
    /// channel, shifted by the tap's offset, over the whole tile at once — long contiguous
    /// axpys even for 7x7 or 3x3 maps, the batch filling the vector dimension.
    Shifted,
    /// The convolution lowered to the sparse matrix of its linear map on one example (one
    /// entry per weight and output position it reaches), run by the linear kernels; layers
    /// whose matrix would be too large fall back to `Auto`'s choice among the others.
    Lowered,
}

/// Density from which [`SparseConv::Auto`] unfolds (CSR × im2col): on a ResNet-20 stage-1
/// layer (16→16, 3x3, 32x32) im2col was ≈1.2–1.4x faster than direct at 10% density and
/// 1.2–2x slower at 5% and below (2-core EPYC, busy).
pub const AUTO_IM2COL_DENSITY: f64 = 0.08;

impl SparseConv {
    /// The kernel that runs a layer of this geometry and weights at this batch size, given
    /// what was precomputed: the lowered matrix where it exists and `self` asks for it
    /// (`Auto`: where [`lowered::auto_lowers`] says it pays at this batch), else
    /// [`resolve`](Self::resolve).
    pub(crate) fn choose(self, g: &Geom, a: &Csr, prep: &ConvPrep, batch: usize) -> SparseConv {
        let lower = match self {
            SparseConv::Lowered => true,
            SparseConv::Auto => lowered::auto_lowers(g, a, batch),
            _ => false,
        };
        if lower && prep.lowered.is_some() {
            SparseConv::Lowered
        } else {
            self.resolve(g, a)
        }
    }

    /// The plane kernel (direct, im2col or shifted) that `Auto` picks for a layer of this
    /// geometry and density; `Shifted` and `Lowered` where they cannot run fall back to it;
    /// others: themselves.
    pub(crate) fn resolve(self, g: &Geom, a: &Csr) -> SparseConv {
        match self {
            SparseConv::Auto | SparseConv::Shifted | SparseConv::Lowered if shifted_fits(g) => {
                SparseConv::Shifted
            }
            SparseConv::Auto | SparseConv::Shifted | SparseConv::Lowered => {
                let total = (a.rows * a.cols).max(1) as f64;
                if is_pointwise(g) || a.nnz() as f64 / total >= AUTO_IM2COL_DENSITY {
                    SparseConv::Im2col
                } else {
                    SparseConv::Direct
                }
            }
            other => other,
        }
    }
}

#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

#[inline(always)]
fn axpy<const FMA: bool>(a: f32, x: &[f32], y: &mut [f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y = madd::<FMA>(a, *x, *y);
    }
}

#[inline(always)]
fn finish(act: Activation, y: &mut [f32]) {
    act.apply_all(y)
}

/// Row length of the direct kernel's input layout: `w` for stride 1; for a horizontal stride
/// `sw > 1` every input row is split into its `sw` phases (`x[.., j·sw + p]` for `p < sw`), each
/// `⌈w / sw⌉` long, so the strided reads of one output row become contiguous.
fn phased_row(g: &Geom) -> usize {
    if g.sw == 1 {
        g.w
    } else {
        g.sw * g.w.div_ceil(g.sw)
    }
}

/// Rewrites one example into the phased layout of [`phased_row`] (stride > 1 only).
fn dephase(g: &Geom, x: &[f32], xs: &mut [f32]) {
    let wph = g.w.div_ceil(g.sw);
    let row = g.sw * wph;
    for (xr, dr) in x.chunks_exact(g.w).zip(xs.chunks_exact_mut(row)) {
        for (p, d) in dr.chunks_exact_mut(wph).enumerate() {
            for (j, v) in d.iter_mut().enumerate() {
                *v = xr.get(j * g.sw + p).copied().unwrap_or(0.0);
            }
        }
    }
}

/// Output channels `o0..` (as many as `y` holds planes) of one example, direct sparse. `x` is
/// the example in the layout of [`phased_row`]; `axpy(a, x, y)` does `y += a·x`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn direct_body(
    g: &Geom,
    a: &Csr,
    o0: usize,
    x: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
    axpy: impl Fn(f32, &[f32], &mut [f32]),
) {
    let plane = g.ho * g.wo;
    let khw = g.kh * g.kw;
    let row = phased_row(g);
    let wph = row / g.sw;
    let cplane = g.h * row;
    // output channels per group; the group's first input channel
    let og = (a.rows / g.groups).max(1);
    for (oi, yp) in y.chunks_exact_mut(plane).enumerate() {
        let o = o0 + oi;
        let cbase = (o / og) * g.cg();
        yp.fill(bias.map_or(0.0, |b| b[o]));
        for k in a.row_ptr[o]..a.row_ptr[o + 1] {
            let col = a.col_idx[k] as usize;
            let v = a.values[k];
            let c = col / khw;
            let r = col - c * khw;
            let c = cbase + c;
            let dy = r / g.kw * g.dh;
            let dx = (r % g.kw) * g.dw;
            let (oy0, oy1) = Geom::valid_range(g.ho, g.h, g.sh, g.ph, dy);
            let (ox0, ox1) = Geom::valid_range(g.wo, g.w, g.sw, g.pw, dx);
            if ox0 >= ox1 {
                continue;
            }
            let ix0 = ox0 * g.sw + dx - g.pw;
            // input columns ix0, ix0 + sw, ... are contiguous in phase ix0 % sw
            let start = (ix0 % g.sw) * wph + ix0 / g.sw;
            let n = ox1 - ox0;
            let xp = &x[c * cplane..(c + 1) * cplane];
            for oy in oy0..oy1 {
                let iy = oy * g.sh + dy - g.ph;
                let xr = &xp[iy * row + start..iy * row + start + n];
                axpy(v, xr, &mut yp[oy * g.wo + ox0..oy * g.wo + ox1]);
            }
        }
        finish(act, yp);
    }
}

/// Unfolds one example `x` (`c x h x w`) into `col` (`c·kh·kw x ho·wo`), zeros where the
/// window hangs over the padding. Group `gi`'s rows are `gi·(c/groups)·kh·kw ..` of the next
/// `(c/groups)·kh·kw`.
fn im2col(g: &Geom, x: &[f32], col: &mut [f32]) {
    let plane = g.ho * g.wo;
    let hw = g.h * g.w;
    for c in 0..g.c {
        let xp = &x[c * hw..(c + 1) * hw];
        for ty in 0..g.kh {
            let dy = ty * g.dh;
            let (oy0, oy1) = Geom::valid_range(g.ho, g.h, g.sh, g.ph, dy);
            for tx in 0..g.kw {
                let dx = tx * g.dw;
                let (ox0, ox1) = Geom::valid_range(g.wo, g.w, g.sw, g.pw, dx);
                let row = (c * g.kh + ty) * g.kw + tx;
                let dst = &mut col[row * plane..(row + 1) * plane];
                if ox0 >= ox1 {
                    dst.fill(0.0);
                    continue;
                }
                dst[..oy0 * g.wo].fill(0.0);
                dst[oy1 * g.wo..].fill(0.0);
                let ix0 = ox0 * g.sw + dx - g.pw;
                for oy in oy0..oy1 {
                    let iy = oy * g.sh + dy - g.ph;
                    let xr = &xp[iy * g.w + ix0..(iy + 1) * g.w];
                    let dr = &mut dst[oy * g.wo..(oy + 1) * g.wo];
                    dr[..ox0].fill(0.0);
                    dr[ox1..].fill(0.0);
                    let dr = &mut dr[ox0..ox1];
                    if g.sw == 1 {
                        dr.copy_from_slice(&xr[..ox1 - ox0]);
                    } else {
                        for (d, s) in dr.iter_mut().zip(xr.iter().step_by(g.sw)) {
                            *d = *s;
                        }
                    }
                }
            }
        }
    }
}

/// Whether the patch matrix is the input itself (1x1 kernel, stride 1, no padding).
fn is_pointwise(g: &Geom) -> bool {
    g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.ph == 0 && g.pw == 0
}

/// Output channels `o0..` of one example from its patch matrix, sparse. `og` = output
/// channels per group (group `o / og` reads patch rows `(o / og)·a.cols ..`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn im2col_sparse_body<const FMA: bool>(
    plane: usize,
    og: usize,
    a: &Csr,
    o0: usize,
    col: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
) {
    for (oi, yp) in y.chunks_exact_mut(plane).enumerate() {
        let o = o0 + oi;
        let base = (o / og) * a.cols;
        yp.fill(bias.map_or(0.0, |b| b[o]));
        for k in a.row_ptr[o]..a.row_ptr[o + 1] {
            let c = base + a.col_idx[k] as usize;
            axpy::<FMA>(a.values[k], &col[c * plane..(c + 1) * plane], yp);
        }
        finish(act, yp);
    }
}

/// Sparse rows `o0..` of one example, given either the example (direct) or its patch matrix.
#[allow(clippy::too_many_arguments)]
fn sparse_rows(
    isa: Isa,
    algo: SparseConv,
    g: &Geom,
    a: &Csr,
    o0: usize,
    x_or_col: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
) {
    let plane = g.ho * g.wo;
    let og = (a.rows / g.groups).max(1);
    match (algo, isa) {
        (SparseConv::Direct, Isa::Generic) => {
            direct_body(g, a, o0, x_or_col, bias, act, y, axpy::<false>)
        }
        (
            SparseConv::Im2col | SparseConv::Auto | SparseConv::Shifted | SparseConv::Lowered,
            Isa::Generic,
        ) => im2col_sparse_body::<false>(plane, og, a, o0, x_or_col, bias, act, y),
        // SAFETY: Avx2Fma only exists after run-time detection; the bodies are safe code.
        #[cfg(target_arch = "x86_64")]
        (SparseConv::Direct, Isa::Avx2Fma) => unsafe {
            crate::avx2::conv_direct(g, a, o0, x_or_col, bias, act, y)
        },
        #[cfg(target_arch = "x86_64")]
        (
            SparseConv::Im2col | SparseConv::Auto | SparseConv::Shifted | SparseConv::Lowered,
            Isa::Avx2Fma,
        ) => unsafe { crate::avx2::conv_im2col_sparse(plane, og, a, o0, x_or_col, bias, act, y) },
    }
}

/// Runs `per_example(x_example, y_example, scratch)` over the batch, split across threads when
/// `pieces > 1` (each thread gets its own scratch of `scratch_len` floats).
fn over_examples<F>(
    pieces: usize,
    x: &[f32],
    in_len: usize,
    y: &mut [f32],
    out_len: usize,
    scratch_len: usize,
    per_example: F,
) where
    F: Fn(&[f32], &mut [f32], &mut [f32]) + Sync,
{
    let batch = y.len() / out_len.max(1);
    let run = |xc: &[f32], yc: &mut [f32]| {
        with_scratch(scratch_len, |scratch| {
            for (xe, ye) in xc.chunks_exact(in_len).zip(yc.chunks_exact_mut(out_len)) {
                per_example(xe, ye, scratch);
            }
        })
    };
    if pieces <= 1 {
        run(x, y);
        return;
    }
    let per = batch.div_ceil(pieces);
    y.par_chunks_mut(per * out_len)
        .zip(x.par_chunks(per * in_len))
        .for_each(|(yc, xc)| run(xc, yc));
}

/// Sparse convolution `y = act(conv(x, A) + b)` over a batch: `x` is `batch x (c·h·w)`,
/// `y` is `batch x (a.rows·ho·wo)`, `a` is `out x (c/groups·kh·kw)` CSR. With `ep.pool` (only
/// where [`pool_fuses`] says so) `y` is the 2x2 max pool of that, `batch x (a.rows·(ho/2)·(wo/2))`,
/// taken in the same pass.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_sparse(
    exec: Exec,
    algo: SparseConv,
    g: &Geom,
    a: &Csr,
    prep: &ConvPrep,
    x: &[f32],
    batch: usize,
    bias: Option<&[f32]>,
    ep: Epilogue,
    y: &mut [f32],
) {
    let plane = g.ho * g.wo;
    let in_len = g.c * g.h * g.w;
    let out_len = a.rows * plane;
    let act = ep.act;
    // a pooled output only where the shifted kernel can take the pool on its way out
    debug_assert!(!ep.pool || pool_fuses(algo, g, a, prep, batch));
    debug_assert_eq!(a.cols, g.cg() * g.kh * g.kw);
    debug_assert_eq!(a.rows % g.groups, 0);
    debug_assert_eq!(x.len(), batch * in_len);
    debug_assert_eq!(y.len(), batch * a.rows * out_plane(g, ep.pool));
    if batch == 0 || out_len == 0 {
        return;
    }
    let algo = algo.choose(g, a, prep, batch);
    if let (SparseConv::Lowered, Some(low)) = (algo, &prep.lowered) {
        return low.forward(exec, x, batch, act, y);
    }
    if algo == SparseConv::Shifted {
        let owned;
        let taps = match &prep.taps {
            Some(t) => t,
            None => {
                owned = ShiftTaps::new(g, a);
                &owned
            }
        };
        return conv_shifted(exec, g, a, taps, x, batch, bias, ep, y);
    }

    let unfold = algo == SparseConv::Im2col && !is_pointwise(g);
    let phase = algo == SparseConv::Direct && g.sw > 1;
    let col_len = if unfold {
        g.c * g.kh * g.kw * plane
    } else if phase {
        g.c * g.h * phased_row(g)
    } else {
        0
    };
    // the kernel's input: the example itself, its patch matrix, or its phased copy
    let prep = |xe: &'_ [f32], col: &'_ mut [f32]| -> bool {
        if unfold {
            im2col(g, xe, col);
        } else if phase {
            dephase(g, xe, col);
        }
        unfold || phase
    };
    let work = a.nnz().saturating_mul(plane).saturating_mul(batch);
    let pieces = exec.pieces(work, batch.max(a.rows));
    if pieces > 1 && batch < pieces {
        // few examples: split each one's output channels
        let bounds = a.balanced_row_splits(pieces);
        with_scratch(col_len, |col| {
            for (xe, ye) in x.chunks_exact(in_len).zip(y.chunks_exact_mut(out_len)) {
                let src: &[f32] = if prep(xe, col) { col } else { xe };
                split_by_bounds(ye, &bounds, plane)
                    .into_par_iter()
                    .for_each(|(o0, ych)| {
                        sparse_rows(exec.isa, algo, g, a, o0, src, bias, act, ych)
                    });
            }
        });
        return;
    }
    over_examples(pieces, x, in_len, y, out_len, col_len, |xe, ye, col| {
        let src: &[f32] = if prep(xe, col) { col } else { xe };
        sparse_rows(exec.isa, algo, g, a, 0, src, bias, act, ye);
    });
}

/// `y[rows] = act(W[rows] · col + b[rows])` for one example: `w` holds the rows' weights
/// (`rows x k`), `col` is `k x plane`, `y` is `rows x plane`.
fn gemm_rows(
    w: &[f32],
    k: usize,
    col: &[f32],
    plane: usize,
    bias: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
) {
    let rows = y.len() / plane.max(1);
    for (r, yr) in y.chunks_exact_mut(plane).enumerate() {
        yr.fill(bias.map_or(0.0, |b| b[r]));
    }
    if k > 0 && rows > 0 && plane > 0 {
        // SAFETY: `w` is rows x k, `col` is k x plane, `y` is rows x plane, all row-major and
        // of those lengths (checked by the callers); `y` aliases neither input.
        unsafe {
            matrixmultiply::sgemm(
                rows,
                k,
                plane,
                1.0,
                w.as_ptr(),
                k as isize,
                1,
                col.as_ptr(),
                plane as isize,
                1,
                1.0,
                y.as_mut_ptr(),
                plane as isize,
                1,
            );
        }
    }
    finish(act, y);
}

/// A raw output pointer shared by threads that write disjoint elements.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);
// SAFETY: only used where threads write disjoint column ranges (see `conv_dense`).
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// The pointer `off` floats further (a method, so closures capture the whole `Send` value).
    fn at(self, off: usize) -> *mut f32 {
        self.0.wrapping_add(off)
    }
}

/// Columns `n0..n0 + n` of one example's `y = act(W · col + b)` (`y` is `out x plane` at
/// `y`, `col` is `k x plane`).
///
/// # Safety
/// `y` must point at `out · plane` writable floats that no other thread touches in these
/// columns; `w` is `out x k`, `col` is `k x plane`, `n0 + n <= plane`.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_cols(
    w: &[f32],
    out: usize,
    k: usize,
    col: &[f32],
    plane: usize,
    n0: usize,
    n: usize,
    bias: Option<&[f32]>,
    act: Activation,
    y: *mut f32,
) {
    for r in 0..out {
        let row = std::slice::from_raw_parts_mut(y.add(r * plane + n0), n);
        row.fill(bias.map_or(0.0, |b| b[r]));
    }
    if k > 0 && n > 0 {
        matrixmultiply::sgemm(
            out,
            k,
            n,
            1.0,
            w.as_ptr(),
            k as isize,
            1,
            col.as_ptr().add(n0),
            plane as isize,
            1,
            1.0,
            y.add(n0),
            plane as isize,
            1,
        );
    }
    if act != Activation::None {
        for r in 0..out {
            finish(
                act,
                std::slice::from_raw_parts_mut(y.add(r * plane + n0), n),
            );
        }
    }
}

/// Dense convolution over a batch (im2col + one sgemm per group): `w` is
/// `out x (c/groups·kh·kw)` row-major, shapes as in [`conv_sparse`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_dense(
    exec: Exec,
    g: &Geom,
    w: &[f32],
    out: usize,
    x: &[f32],
    batch: usize,
    bias: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
) {
    let plane = g.ho * g.wo;
    // per group: k patch rows, og output channels
    let k = g.cg() * g.kh * g.kw;
    let og = out / g.groups;
    let in_len = g.c * g.h * g.w;
    let out_len = out * plane;
    debug_assert_eq!(w.len(), out * k);
    debug_assert_eq!(out % g.groups, 0);
    debug_assert_eq!(x.len(), batch * in_len);
    debug_assert_eq!(y.len(), batch * out_len);
    if batch == 0 || out_len == 0 {
        return;
    }
    let unfold = !is_pointwise(g);
    let col_len = if unfold { g.groups * k * plane } else { 0 };
    let work = out
        .saturating_mul(k)
        .saturating_mul(plane)
        .saturating_mul(batch);
    let pieces = exec.pieces(work, batch.max(out));
    if pieces > 1 && batch < pieces {
        // few examples: split each one's output positions (columns of the patch matrix), so
        // that no two threads pack the same part of it
        let per = plane.div_ceil(pieces);
        let yp = SharedOut(y.as_mut_ptr());
        with_scratch(col_len, |col| {
            for (e, xe) in x.chunks_exact(in_len).enumerate() {
                let src: &[f32] = if unfold {
                    im2col(g, xe, col);
                    col
                } else {
                    xe
                };
                (0..plane.div_ceil(per)).into_par_iter().for_each(|p| {
                    let n0 = p * per;
                    let n = per.min(plane - n0);
                    for gi in 0..g.groups {
                        // SAFETY: pieces write the disjoint column ranges n0..n0+n of example
                        // e's `out x plane` output (group gi: rows gi·og..), inside `y`.
                        unsafe {
                            gemm_cols(
                                &w[gi * og * k..(gi + 1) * og * k],
                                og,
                                k,
                                &src[gi * k * plane..(gi + 1) * k * plane],
                                plane,
                                n0,
                                n,
                                bias.map(|b| &b[gi * og..(gi + 1) * og]),
                                act,
                                yp.at(e * out_len + gi * og * plane),
                            )
                        };
                    }
                });
            }
        });
        return;
    }
    over_examples(pieces, x, in_len, y, out_len, col_len, |xe, ye, col| {
        let src: &[f32] = if unfold {
            im2col(g, xe, col);
            col
        } else {
            xe
        };
        for gi in 0..g.groups {
            gemm_rows(
                &w[gi * og * k..(gi + 1) * og * k],
                k,
                &src[gi * k * plane..(gi + 1) * k * plane],
                plane,
                bias.map(|b| &b[gi * og..(gi + 1) * og]),
                act,
                &mut ye[gi * og * plane..(gi + 1) * og * plane],
            );
        }
    });
}

/// Max (`max = true`) or average pooling (divisor `kh·kw`, padding counted) of a batch, planes
/// split across threads for large inputs.
pub(crate) fn pool(exec: Exec, g: &Geom, max: bool, x: &[f32], y: &mut [f32]) {
    let (hw, plane) = (g.h * g.w, g.ho * g.wo);
    let planes = y.len() / plane.max(1);
    // planes are independent: split them across threads when there are enough values
    let pieces = exec.pieces(x.len().saturating_mul(8), planes);
    if pieces > 1 {
        let per = planes.div_ceil(pieces);
        y.par_chunks_mut(per * plane)
            .zip(x.par_chunks(per * hw))
            .for_each(|(yc, xc)| pool_planes(g, max, xc, yc));
        return;
    }
    pool_planes(g, max, x, y)
}

/// [`pool`] of whole planes on the calling thread.
fn pool_planes(g: &Geom, max: bool, x: &[f32], y: &mut [f32]) {
    if g.kh == 2 && g.kw == 2 && g.sh == 2 && g.sw == 2 && g.ph == 0 && g.pw == 0 {
        return if max {
            pool2x2::<true>(g, x, y)
        } else {
            pool2x2::<false>(g, x, y)
        };
    }
    if max {
        pool_rows::<true>(g, x, y)
    } else {
        pool_rows::<false>(g, x, y)
    }
}

/// The common 2x2, stride-2, unpadded pool: each output is the max (or mean) of its four
/// inputs, read straight from the two input rows.
fn pool2x2<const MAX: bool>(g: &Geom, x: &[f32], y: &mut [f32]) {
    let hw = g.h * g.w;
    let plane = g.ho * g.wo;
    for (xp, yp) in x.chunks_exact(hw).zip(y.chunks_exact_mut(plane)) {
        for (oy, yr) in yp.chunks_exact_mut(g.wo).enumerate() {
            let r0 = &xp[2 * oy * g.w..2 * oy * g.w + 2 * g.wo];
            let r1 = &xp[(2 * oy + 1) * g.w..(2 * oy + 1) * g.w + 2 * g.wo];
            for ((d, a), b) in yr
                .iter_mut()
                .zip(r0.chunks_exact(2))
                .zip(r1.chunks_exact(2))
            {
                *d = if MAX {
                    a[0].max(a[1]).max(b[0].max(b[1]))
                } else {
                    0.25 * ((a[0] + a[1]) + (b[0] + b[1]))
                };
            }
        }
    }
}

/// Pooling row by row: each output row combines its window's input rows, one contiguous
/// (stride 1) pass per window column over the valid output columns.
fn pool_rows<const MAX: bool>(g: &Geom, x: &[f32], y: &mut [f32]) {
    let hw = g.h * g.w;
    let plane = g.ho * g.wo;
    let inv = 1.0 / (g.kh * g.kw) as f32;
    let ranges: Vec<(usize, usize)> = (0..g.kw)
        .map(|dx| Geom::valid_range(g.wo, g.w, g.sw, g.pw, dx))
        .collect();
    for (xp, yp) in x.chunks_exact(hw).zip(y.chunks_exact_mut(plane)) {
        for (oy, yr) in yp.chunks_exact_mut(g.wo).enumerate() {
            yr.fill(if MAX { f32::NEG_INFINITY } else { 0.0 });
            // input rows oy·sh − ph + (0..kh), clipped
            let top = oy * g.sh;
            let y0 = top.saturating_sub(g.ph);
            let y1 = (top + g.kh).saturating_sub(g.ph).min(g.h);
            for iy in y0..y1 {
                let xr = &xp[iy * g.w..(iy + 1) * g.w];
                for (dx, &(ox0, ox1)) in ranges.iter().enumerate() {
                    if ox0 >= ox1 {
                        continue;
                    }
                    let ix0 = ox0 * g.sw + dx - g.pw;
                    let dst = &mut yr[ox0..ox1];
                    if g.sw == 1 {
                        for (d, s) in dst.iter_mut().zip(&xr[ix0..]) {
                            *d = if MAX { d.max(*s) } else { *d + *s };
                        }
                    } else {
                        for (d, s) in dst.iter_mut().zip(xr[ix0..].iter().step_by(g.sw)) {
                            *d = if MAX { d.max(*s) } else { *d + *s };
                        }
                    }
                }
            }
            if !MAX {
                for v in yr.iter_mut() {
                    *v *= inv;
                }
            }
        }
    }
}

/// Mean of each `plane`-sized run of `x` into one value of `y`.
pub(crate) fn global_avg_pool(plane: usize, x: &[f32], y: &mut [f32]) {
    let inv = 1.0 / plane.max(1) as f32;
    for (xp, out) in x.chunks_exact(plane).zip(y.iter_mut()) {
        *out = xp.iter().sum::<f32>() * inv;
    }
}

/// `y = act(a + b)` elementwise.
pub(crate) fn add(a: &[f32], b: &[f32], act: Activation, y: &mut [f32]) {
    for ((y, a), b) in y.iter_mut().zip(a).zip(b) {
        *y = act.apply(*a + *b);
    }
}

/// Target length (floats) of one tile of the shifted kernel: as many examples' padded planes
/// as fit (at least one). 512 and 1024 measured the same on vgg-narrow at batch 32; 2048 was
/// slower on its 64-channel layers (the packed tile outgrew L2).
pub const SHIFTED_ROW: usize = 512;

/// Batch size from which the shifted kernel packs several examples into one tile.
const SHIFTED_MIN_TILE_BATCH: usize = 8;

/// Output positions the shifted kernel keeps in registers per output channel (4 AVX2 vectors).
const STRIP: usize = 32;

/// The shifted kernel's layout for tiles of `tile` examples: padded plane width `wp` and size
/// `p`, the per-channel stride of the packed input (`tile·p` rounded up to whole strips, plus
/// a zero tail as long as the largest tap offset, so every shifted strip read stays inside
/// the channel).
#[derive(Clone, Copy, Debug)]
struct ShiftedLayout {
    wp: usize,
    p: usize,
    stride_c: usize,
}

impl ShiftedLayout {
    fn new(g: &Geom, tile: usize) -> ShiftedLayout {
        let wp = g.w + 2 * g.pw;
        let p = wp * (g.h + 2 * g.ph);
        let tail = (g.kh - 1) * g.dh * wp + (g.kw - 1) * g.dw;
        ShiftedLayout {
            wp,
            p,
            stride_c: (tile * p).next_multiple_of(STRIP) + tail,
        }
    }

    /// Positions of a tile of `t` examples that the kernel computes: whole strips up to the
    /// last example's last output (its plane's bottom padding rows and the padded plane's last
    /// row, which hold no output, are not computed; on a 7x7 map that is 2 strips instead of 3).
    fn computed(&self, g: &Geom, t: usize) -> usize {
        ((t.max(1) - 1) * self.p + (g.ho - 1) * self.wp + g.wo).next_multiple_of(STRIP)
    }

    /// Whether every offset into the packed input (`g.c` channels of `stride_c`) fits a u32.
    fn offsets_fit(&self, g: &Geom) -> bool {
        g.c.saturating_mul(self.stride_c) <= u32::MAX as usize
    }

    /// Offset into the packed input of every nonzero (its input channel's start plus its tap's
    /// offset), in CSR order.
    fn offsets(&self, taps: &ShiftTaps) -> Vec<u32> {
        taps.chan
            .iter()
            .zip(&taps.tap)
            .map(|(&c, &t)| c * self.stride_c as u32 + t)
            .collect()
    }
}

/// What a sparse convolution layer precomputes once for the kernels it may run (which one
/// runs can depend on the batch size): the shifted kernel's taps and the lowered matrix, built
/// from the weights when the model is loaded, not per call. Without the lowered matrix the
/// layer runs a plane kernel; without the taps the shifted kernel builds them per call.
#[derive(Clone, Debug, Default)]
pub(crate) struct ConvPrep {
    taps: Option<ShiftTaps>,
    lowered: Option<Lowered>,
}

impl ConvPrep {
    /// What `algo` may run on this layer (geometry `g`, weights `a`, `bias`) needs.
    pub(crate) fn new(algo: SparseConv, g: &Geom, a: &Csr, bias: Option<&[f32]>) -> ConvPrep {
        let lower = match algo {
            SparseConv::Lowered => true,
            SparseConv::Auto => lowered::auto_may_lower(g, a),
            _ => false,
        };
        ConvPrep {
            taps: (algo.resolve(g, a) == SparseConv::Shifted).then(|| ShiftTaps::new(g, a)),
            lowered: (lower && lowered::can_build(g, a)).then(|| Lowered::new(g, a, bias)),
        }
    }
}

/// Each nonzero's input channel and the offset of its tap `(dy, dx)` in the zero-padded plane:
/// what the shifted kernel's offsets are made of, independent of the tile size. The divisions
/// that split a CSR column into channel and tap happen here, once per layer, not per call.
#[derive(Clone, Debug)]
pub(crate) struct ShiftTaps {
    chan: Vec<u32>,
    tap: Vec<u32>,
    /// The offsets for tiles of one example (every batch-1 call), computed once: per call they
    /// were ~4% of a batch-1 vgg-narrow pass. Empty where they would not fit a u32.
    off1: Vec<u32>,
}

impl ShiftTaps {
    /// The taps of `a` (a convolution of geometry `g`, CSR over `c/groups·kh·kw` columns).
    pub(crate) fn new(g: &Geom, a: &Csr) -> ShiftTaps {
        let wp = g.w + 2 * g.pw;
        let khw = g.kh * g.kw;
        let og = (a.rows / g.groups).max(1);
        let cg = g.cg();
        let mut chan = Vec::with_capacity(a.nnz());
        let mut tap = Vec::with_capacity(a.nnz());
        for o in 0..a.rows {
            let cbase = (o / og) * cg;
            for &j in &a.col_idx[a.row_ptr[o]..a.row_ptr[o + 1]] {
                let (ci, r) = (j as usize / khw, j as usize % khw);
                chan.push((cbase + ci) as u32);
                tap.push(((r / g.kw) * g.dh * wp + (r % g.kw) * g.dw) as u32);
            }
        }
        let mut taps = ShiftTaps {
            chan,
            tap,
            off1: Vec::new(),
        };
        let lay = ShiftedLayout::new(g, 1);
        if lay.offsets_fit(g) {
            taps.off1 = lay.offsets(&taps);
        }
        taps
    }
}

/// Copies examples `x` (`t x c x h x w`) into `xp`, laid out `c x stride_c`: per channel the
/// zero-padded planes of the `t` examples one after another, then zeros.
fn shifted_pack(g: &Geom, lay: &ShiftedLayout, x: &[f32], t: usize, xp: &mut [f32]) {
    let (wp, p) = (lay.wp, lay.p);
    let hw = g.h * g.w;
    for c in 0..g.c {
        let ch = &mut xp[c * lay.stride_c..(c + 1) * lay.stride_c];
        // one fill for all the padding (per-row fills of 1–2 values were ~10% of a batch-1
        // vgg-narrow pass in calls to memset), then the rows
        ch.fill(0.0);
        for e in 0..t {
            let dst = &mut ch[e * p..(e + 1) * p];
            let src = &x[(e * g.c + c) * hw..(e * g.c + c + 1) * hw];
            for (iy, row) in src.chunks_exact(g.w).enumerate() {
                let at = (g.ph + iy) * wp + g.pw;
                dst[at..at + g.w].copy_from_slice(row);
            }
        }
    }
}

/// Output channels `rows` of `t` examples for a stride-1 convolution: for each strip of
/// [`STRIP`] positions of the packed tile, the channel's accumulators stay in registers while
/// every nonzero `(c, dy, dx)` adds its weight times the packed channel `c` shifted by the tap
/// offset (positions past a row's or a plane's end are computed and thrown away). The valid
/// `ho x wo` positions of each example then go to `y`.
///
/// # Safety
/// `y` points at the tile's first example in a batch-major output of `a.rows·ho·wo` floats per
/// example, `t` examples long; no other thread writes these rows of these examples. `off` is
/// [`ShiftedLayout::offsets`] of `lay`, `xp` packed by [`shifted_pack`] with `lay`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn shifted_body<const FMA: bool>(
    g: &Geom,
    a: &Csr,
    lay: &ShiftedLayout,
    off: &[u32],
    rows: std::ops::Range<usize>,
    xp: &[f32],
    t: usize,
    acc: &mut [f32],
    bias: Option<&[f32]>,
    ep: Epilogue,
    y: *mut f32,
) {
    let p = lay.p;
    let l = lay.computed(g, t);
    let plane = out_plane(g, ep.pool);
    let out_len = a.rows * plane;
    let act = ep.act;
    let nrows = rows.len();
    let acc = &mut acc[..nrows * l];
    // Strips outer, channels inner: what one strip reads of every input channel (the strip
    // plus the taps' reach) stays in L1 while all the output channels use it.
    for q0 in (0..l).step_by(STRIP) {
        for (ri, o) in rows.clone().enumerate() {
            let b = bias.map_or(0.0, |b| b[o]);
            let (k0, k1) = (a.row_ptr[o], a.row_ptr[o + 1]);
            let (vals, offs) = (&a.values[k0..k1], &off[k0..k1]);
            // two independent sets of accumulators (even and odd nonzeros), so the adds of
            // consecutive nonzeros do not wait on each other
            let mut r = [b; STRIP];
            let mut r2 = [0.0f32; STRIP];
            let pairs = vals.len() / 2;
            for j in 0..pairs {
                let (w0, w1) = (vals[2 * j], vals[2 * j + 1]);
                let (s0, s1) = (offs[2 * j] as usize + q0, offs[2 * j + 1] as usize + q0);
                debug_assert!(s0.max(s1) + STRIP <= xp.len());
                // SAFETY: offsets of `lay` keep every strip inside the packed input (caller)
                let x0 = &*(xp.as_ptr().add(s0) as *const [f32; STRIP]);
                let x1 = &*(xp.as_ptr().add(s1) as *const [f32; STRIP]);
                for i in 0..STRIP {
                    r[i] = madd::<FMA>(w0, x0[i], r[i]);
                    r2[i] = madd::<FMA>(w1, x1[i], r2[i]);
                }
            }
            if vals.len() % 2 == 1 {
                let s = offs[vals.len() - 1] as usize + q0;
                debug_assert!(s + STRIP <= xp.len());
                // SAFETY: as above
                let x = &*(xp.as_ptr().add(s) as *const [f32; STRIP]);
                let w = vals[vals.len() - 1];
                for i in 0..STRIP {
                    r[i] = madd::<FMA>(w, x[i], r[i]);
                }
            }
            let out = &mut acc[ri * l + q0..ri * l + q0 + STRIP];
            for i in 0..STRIP {
                out[i] = r[i] + r2[i];
            }
        }
    }
    for (ri, o) in rows.enumerate() {
        let accr = &acc[ri * l..(ri + 1) * l];
        for e in 0..t {
            if ep.pool {
                // the 2x2 max of the activated outputs, in the order `pool2x2` takes it, so
                // the fused layer gives exactly the values of conv then pool
                let pw = g.wo / 2;
                for py in 0..g.ho / 2 {
                    let r0 = &accr[e * p + 2 * py * lay.wp..][..2 * pw];
                    let r1 = &accr[e * p + (2 * py + 1) * lay.wp..][..2 * pw];
                    let d = std::slice::from_raw_parts_mut(
                        y.add(e * out_len + o * plane + py * pw),
                        pw,
                    );
                    for ((d, a), b) in d.iter_mut().zip(r0.chunks_exact(2)).zip(r1.chunks_exact(2))
                    {
                        *d = act
                            .apply(a[0])
                            .max(act.apply(a[1]))
                            .max(act.apply(b[0]).max(act.apply(b[1])));
                    }
                }
                continue;
            }
            for oy in 0..g.ho {
                let s = &accr[e * p + oy * lay.wp..e * p + oy * lay.wp + g.wo];
                let d = std::slice::from_raw_parts_mut(
                    y.add(e * out_len + o * plane + oy * g.wo),
                    g.wo,
                );
                for (d, s) in d.iter_mut().zip(s) {
                    *d = act.apply(*s);
                }
            }
        }
    }
}

/// Whether the shifted kernel runs this geometry (stride 1 in both directions).
pub(crate) fn shifted_fits(g: &Geom) -> bool {
    g.sh == 1 && g.sw == 1
}

/// What the shifted kernel does with its sums on the way out: the activation, then, with
/// `pool`, the 2x2 stride-2 max pool of the activated outputs (a conv and the max pool after
/// it in one pass: the conv's full-size output is never written).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Epilogue {
    pub act: Activation,
    pub pool: bool,
}

/// Output positions per channel: the conv's plane, or the 2x2-pooled plane.
fn out_plane(g: &Geom, pool: bool) -> usize {
    if pool {
        (g.ho / 2) * (g.wo / 2)
    } else {
        g.ho * g.wo
    }
}

/// Whether [`conv_sparse`] can take a 2x2, stride-2, unpadded max pool of this layer's output
/// in the same pass at this batch size (`Epilogue::pool`): the shifted kernel is the choice,
/// its taps are prepared, and its offsets fit.
pub(crate) fn pool_fuses(
    algo: SparseConv,
    g: &Geom,
    a: &Csr,
    prep: &ConvPrep,
    batch: usize,
) -> bool {
    algo.choose(g, a, prep, batch) == SparseConv::Shifted
        && prep.taps.is_some()
        && g.ho >= 2
        && g.wo >= 2
        // conv_shifted's tile before any split across threads: a split only shrinks it
        && ShiftedLayout::new(g, shifted_tile(g, batch)).offsets_fit(g)
}

/// Examples per tile of the shifted kernel at this batch size, before a split across threads.
/// Below batch 8 one example per tile: packing several small ones into a strip was slower
/// there (vgg-narrow at 95%, best per call: batch 4 289–299 µs packed, 265.5 µs one by one;
/// batch 8 on 2 threads, two sub-batches of 4: 410–443 → 335–385 µs).
fn shifted_tile(g: &Geom, batch: usize) -> usize {
    if batch < SHIFTED_MIN_TILE_BATCH {
        1
    } else {
        (SHIFTED_ROW / ShiftedLayout::new(g, 1).p).clamp(1, batch)
    }
}

/// Sparse stride-1 convolution over a batch with [`shifted_body`], in tiles of examples whose
/// padded planes together fill about [`SHIFTED_ROW`] floats: tiles across threads when there
/// are enough of them, else each tile's output channels (nnz-balanced) across threads.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv_shifted(
    exec: Exec,
    g: &Geom,
    a: &Csr,
    taps: &ShiftTaps,
    x: &[f32],
    batch: usize,
    bias: Option<&[f32]>,
    ep: Epilogue,
    y: &mut [f32],
) {
    let in_len = g.c * g.h * g.w;
    let out_len = a.rows * out_plane(g, ep.pool);
    if batch == 0 || out_len == 0 {
        return;
    }
    let p = ShiftedLayout::new(g, 1).p;
    // Whole tiles are coarse pieces of work with nothing shared but the read-only weights, so
    // a batch splits into tiles across threads from an eighth of the usual threshold
    // (vgg-narrow's 3x3-map layers, 0.7–1.7 M multiply-adds at batch 32, ran single-threaded
    // before); splitting one example's channels keeps the usual one (it was slower at batch 1).
    let work = a.nnz().saturating_mul(p).saturating_mul(batch);
    let pieces = match exec.pieces(work.saturating_mul(8), batch.max(a.rows)) {
        n if n > 1 && batch >= n => n,
        _ => exec.pieces(work, batch.max(a.rows)),
    };
    let mut tile = shifted_tile(g, batch);
    if pieces > 1 && batch >= pieces {
        tile = tile.min(batch.div_ceil(pieces));
    }
    let lay = ShiftedLayout::new(g, tile);
    if !lay.offsets_fit(g) {
        // offsets would not fit their u32s (a 16 GB input tile): the direct kernel instead
        // (a pooled output is asked for only where they fit: `pool_fuses`)
        debug_assert!(!ep.pool);
        return conv_sparse(
            exec,
            SparseConv::Direct,
            g,
            a,
            &ConvPrep::default(),
            x,
            batch,
            bias,
            ep,
            y,
        );
    }
    let owned;
    let off: &[u32] = if tile == 1 && taps.off1.len() == a.nnz() {
        &taps.off1
    } else {
        owned = lay.offsets(taps);
        &owned
    };
    let tiles = batch.div_ceil(tile);
    let isa = exec.isa;
    let yp = SharedOut(y.as_mut_ptr());
    let acc_len = a.rows * (tile * lay.p).next_multiple_of(STRIP);
    let xp_len = g.c * lay.stride_c;
    let run_tile = |ti: usize, rows: &[(usize, usize)]| {
        let e0 = ti * tile;
        let t = tile.min(batch - e0);
        with_scratch(xp_len + acc_len, |s| {
            let (xp, acc) = s.split_at_mut(xp_len);
            shifted_pack(g, &lay, &x[e0 * in_len..(e0 + t) * in_len], t, xp);
            let xp: &[f32] = xp;
            let one = |r: (usize, usize), acc: &mut [f32]| {
                // SAFETY: tile ti covers examples e0..e0+t of `y`; pieces get disjoint rows.
                unsafe {
                    shifted_rows(
                        isa,
                        g,
                        a,
                        &lay,
                        off,
                        r.0..r.1,
                        xp,
                        t,
                        acc,
                        bias,
                        ep,
                        yp.at(e0 * out_len),
                    )
                }
            };
            if rows.len() == 1 {
                one(rows[0], acc);
            } else {
                rows.par_iter()
                    .for_each(|&r| with_scratch(acc_len, |acc| one(r, acc)));
            }
        });
    };
    let all = [(0, a.rows)];
    if pieces <= 1 {
        (0..tiles).for_each(|ti| run_tile(ti, &all));
    } else if tiles >= pieces {
        (0..tiles).into_par_iter().for_each(|ti| run_tile(ti, &all));
    } else {
        let b = a.balanced_row_splits(pieces);
        let splits: Vec<(usize, usize)> = b.windows(2).map(|w| (w[0], w[1])).collect();
        (0..tiles).for_each(|ti| run_tile(ti, &splits));
    }
}

/// [`shifted_body`] for the instruction set.
///
/// # Safety
/// As [`shifted_body`].
#[allow(clippy::too_many_arguments)]
unsafe fn shifted_rows(
    isa: Isa,
    g: &Geom,
    a: &Csr,
    lay: &ShiftedLayout,
    off: &[u32],
    rows: std::ops::Range<usize>,
    xp: &[f32],
    t: usize,
    acc: &mut [f32],
    bias: Option<&[f32]>,
    ep: Epilogue,
    y: *mut f32,
) {
    match isa {
        Isa::Generic => shifted_body::<false>(g, a, lay, off, rows, xp, t, acc, bias, ep, y),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma => shifted_avx2(g, a, lay, off, rows, xp, t, acc, bias, ep, y),
    }
}

/// [`shifted_body`] compiled for AVX2 + FMA.
///
/// # Safety
/// AVX2 and FMA must be present (callers hold an `Isa::Avx2Fma`); otherwise as
/// [`shifted_body`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn shifted_avx2(
    g: &Geom,
    a: &Csr,
    lay: &ShiftedLayout,
    off: &[u32],
    rows: std::ops::Range<usize>,
    xp: &[f32],
    t: usize,
    acc: &mut [f32],
    bias: Option<&[f32]>,
    ep: Epilogue,
    y: *mut f32,
) {
    shifted_body::<true>(g, a, lay, off, rows, xp, t, acc, bias, ep, y)
}
