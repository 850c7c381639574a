//! The in-memory sparse matrix formats the kernels run on: [`Csr`] (compressed sparse rows, what
//! files load into, validated by [`Csr::from_parts`]) and [`Sell8`] (SELL-8, built from a CSR
//! for the batch-1 AVX2 kernel).

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
