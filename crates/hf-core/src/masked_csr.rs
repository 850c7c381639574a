//! Sparse products for *training* a masked layer at low density (pure Rust, on slices).
//!
//! Each step builds the CSR form of the effective weight `ŵ = w ⊙ H(m)` (one pass over w and
//! m) and uses it for the two products that may be sparse: the forward `Zᵀ = ŵ·Hᵀ` and the
//! input gradient `dHᵀ = ŵᵀ·dZᵀ`. Activations are kept feature-major (`features × batch`), so
//! every non-zero does one contiguous, vectorisable axpy over the batch. The weight gradient
//! `dZᵀ·H` stays dense (pruned weights need their flux to regrow) and is not done here.

use rayon::prelude::*;

/// CSR form of `w ⊙ [m >= 0]` for a `rows × cols` row-major weight.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MaskedCsr {
    /// Number of rows (output features).
    pub rows: usize,
    /// Number of columns (input features).
    pub cols: usize,
    /// Row pointers, length `rows + 1`.
    pub row_ptr: Vec<u32>,
    /// Column index of each non-zero.
    pub col: Vec<u32>,
    /// Value of each non-zero.
    pub val: Vec<f32>,
}

/// Rows per parallel task when building or multiplying.
const ROW_BLOCK: usize = 32;

impl MaskedCsr {
    /// Builds the CSR of the present weights (`m >= 0`), reusing this value's buffers.
    pub fn rebuild(&mut self, w: &[f32], m: &[f32], rows: usize, cols: usize) {
        assert_eq!(w.len(), rows * cols);
        assert_eq!(m.len(), rows * cols);
        self.rows = rows;
        self.cols = cols;
        // Per-block gather in parallel, then concatenate.
        let blocks: Vec<(Vec<u32>, Vec<u32>, Vec<f32>)> = (0..rows.div_ceil(ROW_BLOCK))
            .into_par_iter()
            .map(|b| {
                let (r0, r1) = (b * ROW_BLOCK, ((b + 1) * ROW_BLOCK).min(rows));
                let mut counts = Vec::with_capacity(r1 - r0);
                let mut col = Vec::new();
                let mut val = Vec::new();
                for r in r0..r1 {
                    let (wr, mr) = (&w[r * cols..(r + 1) * cols], &m[r * cols..(r + 1) * cols]);
                    let before = col.len();
                    for (k, (&wv, &mv)) in wr.iter().zip(mr).enumerate() {
                        if mv >= 0.0 {
                            col.push(k as u32);
                            val.push(wv);
                        }
                    }
                    counts.push((col.len() - before) as u32);
                }
                (counts, col, val)
            })
            .collect();
        self.row_ptr.clear();
        self.col.clear();
        self.val.clear();
        self.row_ptr.push(0);
        let mut acc = 0u32;
        for (counts, col, val) in blocks {
            for c in counts {
                acc += c;
                self.row_ptr.push(acc);
            }
            self.col.extend_from_slice(&col);
            self.val.extend_from_slice(&val);
        }
    }

    /// Number of non-zeros.
    pub fn nnz(&self) -> usize {
        self.val.len()
    }

    /// `out (rows × batch) = ŵ · h (cols × batch) + bias` (feature-major), optionally with ReLU.
    pub fn forward(&self, h: &[f32], batch: usize, bias: &[f32], relu: bool, out: &mut [f32]) {
        assert_eq!(h.len(), self.cols * batch);
        assert_eq!(out.len(), self.rows * batch);
        assert_eq!(bias.len(), self.rows);
        out.par_chunks_mut(batch * ROW_BLOCK)
            .enumerate()
            .for_each(|(b, chunk)| {
                for (i, o) in chunk.chunks_mut(batch).enumerate() {
                    let r = b * ROW_BLOCK + i;
                    o.fill(bias[r]);
                    let (s, e) = (self.row_ptr[r] as usize, self.row_ptr[r + 1] as usize);
                    for (&k, &v) in self.col[s..e].iter().zip(&self.val[s..e]) {
                        let hk = &h[k as usize * batch..(k as usize + 1) * batch];
                        for (oj, hj) in o.iter_mut().zip(hk) {
                            *oj += v * hj;
                        }
                    }
                    if relu {
                        for oj in o.iter_mut() {
                            *oj = oj.max(0.0);
                        }
                    }
                }
            });
    }

    /// `out (cols × batch) = ŵᵀ · dz (rows × batch)` (feature-major): the input gradient.
    /// Parallel over slices of the batch, so no two tasks write the same element.
    pub fn backward_input(&self, dz: &[f32], batch: usize, out: &mut [f32]) {
        assert_eq!(dz.len(), self.rows * batch);
        assert_eq!(out.len(), self.cols * batch);
        out.fill(0.0);
        let parts = rayon::current_num_threads().clamp(1, 8).min(batch.max(1));
        let step = batch.div_ceil(parts.max(1)).max(1);
        let out_ptr = SendPtr(out.as_mut_ptr());
        (0..batch.div_ceil(step)).into_par_iter().for_each(|p| {
            let (b0, b1) = (p * step, ((p + 1) * step).min(batch));
            let op = &out_ptr;
            for r in 0..self.rows {
                let dzr = &dz[r * batch + b0..r * batch + b1];
                let (s, e) = (self.row_ptr[r] as usize, self.row_ptr[r + 1] as usize);
                for (&k, &v) in self.col[s..e].iter().zip(&self.val[s..e]) {
                    // SAFETY: task p writes only columns b0..b1 of every row; tasks are disjoint.
                    let o = unsafe {
                        std::slice::from_raw_parts_mut(op.0.add(k as usize * batch + b0), b1 - b0)
                    };
                    for (oj, dj) in o.iter_mut().zip(dzr) {
                        *oj += v * dj;
                    }
                }
            }
        });
    }
}

/// Writes the dense effective weight `out = w ⊙ [m >= 0]` in one pass and returns the number of
/// present weights (the dense path's replacement for three tensor ops).
pub fn gate_into(w: &[f32], m: &[f32], out: &mut [f32]) -> usize {
    assert!(w.len() == m.len() && m.len() == out.len());
    out.par_chunks_mut(64 * 1024)
        .zip(w.par_chunks(64 * 1024).zip(m.par_chunks(64 * 1024)))
        .map(|(o, (w, m))| {
            let mut present = 0usize;
            for ((o, &w), &m) in o.iter_mut().zip(w).zip(m) {
                let keep = m >= 0.0;
                *o = if keep { w } else { 0.0 };
                present += keep as usize;
            }
            present
        })
        .sum()
}

struct SendPtr(*mut f32);
// SAFETY: used only for disjoint writes (see `backward_input`).
unsafe impl Sync for SendPtr {}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    fn check(rows: usize, cols: usize, batch: usize, density: f32, seed: u64) {
        let mut s = seed;
        let w: Vec<f32> = (0..rows * cols).map(|_| lcg(&mut s)).collect();
        let m: Vec<f32> = (0..rows * cols)
            .map(|_| {
                if (lcg(&mut s) + 1.0) / 2.0 < density {
                    0.1
                } else {
                    -0.1
                }
            })
            .collect();
        let h: Vec<f32> = (0..cols * batch).map(|_| lcg(&mut s)).collect();
        let bias: Vec<f32> = (0..rows).map(|_| lcg(&mut s)).collect();
        let dz: Vec<f32> = (0..rows * batch).map(|_| lcg(&mut s)).collect();
        let mut csr = MaskedCsr::default();
        csr.rebuild(&w, &m, rows, cols);
        let eff = |r: usize, k: usize| {
            if m[r * cols + k] >= 0.0 {
                w[r * cols + k]
            } else {
                0.0
            }
        };
        assert_eq!(csr.nnz(), m.iter().filter(|&&x| x >= 0.0).count());
        for relu in [false, true] {
            let mut out = vec![f32::NAN; rows * batch];
            csr.forward(&h, batch, &bias, relu, &mut out);
            for r in 0..rows {
                for j in 0..batch {
                    let mut want = bias[r];
                    for k in 0..cols {
                        want += eff(r, k) * h[k * batch + j];
                    }
                    if relu {
                        want = want.max(0.0);
                    }
                    assert!((out[r * batch + j] - want).abs() < 1e-4, "fwd {r},{j}");
                }
            }
        }
        let mut din = vec![f32::NAN; cols * batch];
        csr.backward_input(&dz, batch, &mut din);
        for k in 0..cols {
            for j in 0..batch {
                let want: f32 = (0..rows).map(|r| eff(r, k) * dz[r * batch + j]).sum();
                assert!((din[k * batch + j] - want).abs() < 1e-4, "bwd {k},{j}");
            }
        }
    }

    #[test]
    fn matches_dense_reference_across_densities_and_shapes() {
        for (i, d) in [0.0, 0.02, 0.3, 1.0].into_iter().enumerate() {
            check(70, 45, 13, d, i as u64);
            check(3, 200, 1, d, 10 + i as u64);
            check(33, 1, 64, d, 20 + i as u64);
        }
    }

    #[test]
    fn gate_into_zeroes_pruned_and_counts_present() {
        let w = vec![1.0, -2.0, 3.0, 4.0, 5.0];
        let m = vec![0.0, -0.1, 0.2, -3.0, 1.0];
        let mut out = vec![9.0; 5];
        assert_eq!(gate_into(&w, &m, &mut out), 3);
        assert_eq!(out, vec![1.0, 0.0, 3.0, 0.0, 5.0]);
    }

    #[test]
    fn rebuild_reuses_buffers_and_tracks_mask_changes() {
        let w = vec![1.0, 2.0, 3.0, 4.0];
        let mut csr = MaskedCsr::default();
        csr.rebuild(&w, &[0.0, -1.0, -1.0, 0.5], 2, 2);
        assert_eq!(csr.row_ptr, vec![0, 1, 2]);
        assert_eq!(csr.col, vec![0, 1]);
        assert_eq!(csr.val, vec![1.0, 4.0]);
        csr.rebuild(&w, &[-1.0, -1.0, -1.0, -1.0], 2, 2);
        assert_eq!(csr.row_ptr, vec![0, 0, 0]);
        assert_eq!(csr.nnz(), 0);
    }
}
