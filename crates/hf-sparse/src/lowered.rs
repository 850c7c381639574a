//! A convolution over a small plane, lowered to the sparse matrix of its linear map on one
//! example: row `o·(ho·wo) + p` (output channel `o`, output position `p`) holds one entry per
//! weight of `o` whose tap lands inside the input at `p`, in column `c·(h·w) + q` (input
//! channel `c`, input position `q`). The convolution becomes a linear layer, run by the linear
//! kernels: SELL-8 for one example, feature-major batched SpMM for a batch.
//!
//! Why: on small planes (the 3x3 maps at the end of a VGG) the plane kernels are bound by
//! per-row and per-plane overhead — a 3x3 output row is 3 values — while the lowered matrix
//! holds exactly the multiply-adds that happen (no padding lanes, no border tests) and streams
//! them the way the linear kernels are tuned to. It stores each weight once per output
//! position it reaches (about `ho·wo` times for a 3x3 kernel on a small map), so it is only
//! built where `Auto` may run it ([`auto_lowers`]: small planes, strided layers) or where it is
//! asked for, and within a memory bound ([`can_build`]).

use crate::dispatch::Exec;
use crate::formats::{Csr, Sell8};
use crate::graph::Geom;
use crate::kernels;
use crate::Activation;

/// Largest output plane (`ho·wo`) of a stride-1 layer that
/// [`SparseConv::Auto`](crate::SparseConv::Auto) lowers at any density, from batch
/// [`LOWERED_MIN_BATCH`].
pub const LOWERED_MAX_PLANE: usize = 49;

/// Largest output plane of a stride-1 layer lowered from batch [`LOWERED_MIN_BATCH`] when the
/// layer keeps at most [`LOWERED_SPARSE_DENSITY`] of its weights.
pub const LOWERED_MAX_PLANE_SPARSE: usize = 196;

/// Density up to which [`LOWERED_MAX_PLANE_SPARSE`] applies.
pub const LOWERED_SPARSE_DENSITY: f64 = 0.1;

/// Largest output plane of a stride-1 layer lowered below batch [`LOWERED_MIN_BATCH`] (one
/// example: the plane kernels' vectors are one example's rows there, shortest on the
/// smallest planes).
pub const LOWERED_MAX_PLANE_SMALL_BATCH: usize = 9;

/// Batch size from which the larger planes are lowered (and strided layers at any density).
pub const LOWERED_MIN_BATCH: usize = 8;

/// Largest lowered matrix built (entries): a bound on the memory the lowering may take
/// (8 bytes per entry in each of the two forms).
const MAX_ENTRIES: usize = 1 << 22;

/// A convolution as a sparse linear map on one example (see the module doc).
#[derive(Clone, Debug)]
pub(crate) struct Lowered {
    /// `(out·ho·wo) x (c·h·w)`, bias not included.
    csr: Csr,
    /// The batch-1 form, bias folded in.
    sell: Sell8,
    /// Bias per row of `csr` (the channel's bias at each of its positions).
    bias: Option<Vec<f32>>,
}

/// Entries of the lowered matrix of `a` (a convolution of geometry `g`): one per weight and
/// output position where its tap falls inside the input.
fn entries(g: &Geom, a: &Csr) -> usize {
    let khw = g.kh * g.kw;
    // valid output positions per tap, counted once per tap
    let mut per_tap = vec![0usize; khw];
    for (r, n) in per_tap.iter_mut().enumerate() {
        let (ky, kx) = (r / g.kw, r % g.kw);
        let rows = (0..g.ho)
            .filter(|&oy| inside(oy, g.sh, ky, g.dh, g.ph, g.h))
            .count();
        let cols = (0..g.wo)
            .filter(|&ox| inside(ox, g.sw, kx, g.dw, g.pw, g.w))
            .count();
        *n = rows * cols;
    }
    a.col_idx.iter().map(|&j| per_tap[j as usize % khw]).sum()
}

/// Whether output coordinate `o` with tap `k` reads inside an input of length `len`.
fn inside(o: usize, stride: usize, k: usize, dil: usize, pad: usize, len: usize) -> bool {
    let i = o * stride + k * dil;
    i >= pad && i - pad < len
}

/// Whether [`SparseConv::Auto`](crate::SparseConv::Auto) lowers a layer of this geometry and
/// these weights at this batch size. The rule follows one-layer timings (2-core EPYC, one
/// thread, best of 30; `vgg-narrow` and ResNet-20 shapes at 2–30% density, batch 1, 8, 32):
/// lowered was 1.2–4x faster than the best plane kernel on strided layers from batch 8 and on
/// sparse ones (below [`AUTO_IM2COL_DENSITY`](crate::AUTO_IM2COL_DENSITY)) at batch 1, on
/// stride-1 planes up to 7x7 from batch 8 and up to 14x14 there at 10% density or less, and
/// on 3x3 planes at every batch; it was slower on 16x16 and 32x32 planes and, at batch 1, on
/// 7x7 and larger stride-1 planes. The rule follows most cells, not all: on a busy machine a
/// few went the other way between runs (7x7 at 10–30% density at batch 8;
/// `results/infer/conv-kernels.txt`, made by the `conv_kernels` example).
pub(crate) fn auto_lowers(g: &Geom, a: &Csr, batch: usize) -> bool {
    let plane = g.ho * g.wo;
    let density = a.nnz() as f64 / (a.rows * a.cols).max(1) as f64;
    let big_batch = batch >= LOWERED_MIN_BATCH;
    if g.sh > 1 || g.sw > 1 {
        return big_batch || density < crate::AUTO_IM2COL_DENSITY;
    }
    if big_batch {
        plane <= LOWERED_MAX_PLANE
            || (plane <= LOWERED_MAX_PLANE_SPARSE && density <= LOWERED_SPARSE_DENSITY)
    } else {
        plane <= LOWERED_MAX_PLANE_SMALL_BATCH
    }
}

/// Whether [`auto_lowers`] says yes for some batch size (so the matrix is worth building).
pub(crate) fn auto_may_lower(g: &Geom, a: &Csr) -> bool {
    auto_lowers(g, a, LOWERED_MIN_BATCH) || auto_lowers(g, a, 1)
}

/// Whether the lowered matrix stays within the memory bound (what `--conv lowered` needs).
pub(crate) fn can_build(g: &Geom, a: &Csr) -> bool {
    entries(g, a) <= MAX_ENTRIES && g.c.saturating_mul(g.h).saturating_mul(g.w) < u32::MAX as usize
}

impl Lowered {
    /// The lowered form of `a` (CSR over `c/groups·kh·kw` columns, geometry `g`) and its bias.
    pub(crate) fn new(g: &Geom, a: &Csr, bias: Option<&[f32]>) -> Lowered {
        let (plane, hw, khw) = (g.ho * g.wo, g.h * g.w, g.kh * g.kw);
        let og = (a.rows / g.groups).max(1);
        let cg = g.cg();
        let rows = a.rows * plane;
        let mut row_ptr = Vec::with_capacity(rows + 1);
        row_ptr.push(0);
        let mut col_idx = Vec::with_capacity(entries(g, a));
        let mut values = Vec::with_capacity(col_idx.capacity());
        let mut row: Vec<(u32, f32)> = Vec::new();
        for o in 0..a.rows {
            let cbase = (o / og) * cg;
            let (s, e) = (a.row_ptr[o], a.row_ptr[o + 1]);
            for oy in 0..g.ho {
                for ox in 0..g.wo {
                    row.clear();
                    for k in s..e {
                        let j = a.col_idx[k] as usize;
                        let (ci, r) = (j / khw, j % khw);
                        let (ky, kx) = (r / g.kw, r % g.kw);
                        if inside(oy, g.sh, ky, g.dh, g.ph, g.h)
                            && inside(ox, g.sw, kx, g.dw, g.pw, g.w)
                        {
                            let iy = oy * g.sh + ky * g.dh - g.ph;
                            let ix = ox * g.sw + kx * g.dw - g.pw;
                            row.push((((cbase + ci) * hw + iy * g.w + ix) as u32, a.values[k]));
                        }
                    }
                    // distinct taps of one output position read distinct inputs: no duplicates
                    row.sort_unstable_by_key(|&(c, _)| c);
                    col_idx.extend(row.iter().map(|&(c, _)| c));
                    values.extend(row.iter().map(|&(_, v)| v));
                    row_ptr.push(col_idx.len());
                }
            }
        }
        let csr = Csr {
            rows,
            cols: g.c * hw,
            row_ptr,
            col_idx,
            values,
        };
        let bias: Option<Vec<f32>> = bias.map(|b| {
            b.iter()
                .flat_map(|&v| std::iter::repeat_n(v, plane))
                .collect()
        });
        let sell = Sell8::from_csr(&csr, bias.as_deref());
        Lowered { csr, sell, bias }
    }

    /// `y = act(conv(x) + b)` for a batch-major batch (`x`: `batch x (c·h·w)`, `y`:
    /// `batch x (out·ho·wo)`), through the linear kernels ([`kernels::sparse_linear`]).
    pub(crate) fn forward(
        &self,
        exec: Exec,
        x: &[f32],
        batch: usize,
        act: Activation,
        y: &mut [f32],
    ) {
        kernels::sparse_linear(
            exec,
            &self.csr,
            Some(&self.sell),
            self.bias.as_deref(),
            x,
            batch,
            act,
            y,
        );
    }
}
