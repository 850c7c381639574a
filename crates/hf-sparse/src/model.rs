//! The runtime's loaded network and its forward pass.

use crate::conv::{self, SparseConv};
use crate::dispatch::{Exec, Isa};
use crate::formats::{Csr, Sell8};
use crate::graph::{Geom, Plan};
use crate::input_skip::InputSkip;
use crate::kernels;
use crate::spec::{ratio, ExportMeta, ExportModel, Format, LayerSpec};
use crate::validate;
use crate::SparseError;
use rayon::prelude::*;
use std::cell::RefCell;

/// Exact multiply-add counts of one layer with weights for one example (multiply by the batch
/// size for a batch). Bias additions, activations, pooling and residual sums are not counted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerFlops {
    /// Layer name.
    pub name: String,
    /// Multiply-adds of the dense kernel: `out_features * in_features` (linear),
    /// `out·in·kh·kw·H_out·W_out` (conv2d).
    pub dense_macs: u64,
    /// Multiply-adds of the sparse kernel: `nnz` (linear), `nnz·H_out·W_out` (conv2d).
    pub sparse_macs: u64,
    /// Stored (kept) weights.
    pub nnz: usize,
    /// All prunable weights, `out_features * in_features` (conv2d: `out·in·kh·kw`).
    pub total: usize,
}

impl LayerFlops {
    /// `nnz / total` (1 for an empty layer).
    pub fn density(&self) -> f64 {
        ratio(self.nnz, self.total)
    }
}

/// One runtime layer: the sparse structure is always present (it defines which weights exist;
/// 0 x 0 for layers without weights); the dense matrix is present when the model runs on the
/// dense path, the SELL-8 form (for the batch-1 linear kernel) when it runs on the sparse path.
#[derive(Clone, Debug)]
pub(crate) struct RtLayer {
    pub spec: LayerSpec,
    pub bias: Option<Vec<f32>>,
    pub csr: Csr,
    pub dense: Option<Vec<f32>>,
    pub sell: Option<Sell8>,
    /// The first linear layer by columns, to skip the input's background (sparse path of an
    /// MLP only).
    pub skip: Option<InputSkip>,
    /// What a convolution's sparse kernel precomputes (sparse path only).
    pub conv: conv::ConvPrep,
}

/// Largest batch that the sparse path runs example by example on its batch-1 kernels rather
/// than on the batched ones (synthetic LeNet-300-100 at 98%, 2-core EPYC, minimum per call:
/// batch 2 took 4.1 µs that way against 5.9 µs batched, batch 3 7.0 µs against 6.0 µs).
pub const PER_EXAMPLE_MAX_BATCH: usize = 2;

/// Largest batch that the dense path of an MLP runs example by example on its matrix-vector
/// kernel: the batched product packs the whole weight matrix on every call (synthetic
/// LeNet-300-100, 2-core EPYC, best per call: 124–128 µs batched at every batch from 2 to 8,
/// 16 µs per example one by one — batch 2 30.5 µs, batch 5 79 µs).
pub const DENSE_PER_EXAMPLE_MAX_BATCH: usize = 7;

/// A loaded network, ready to run.
///
/// A model runs either on the sparse path (CSR kernels; what a sparse file loads as) or on the
/// dense path (dense kernels; what a dense file loads as). [`Model::to_dense`] and
/// [`Model::to_sparse`] give the same network on the other path, so the two can be compared on
/// identical weights.
#[derive(Clone, Debug)]
pub struct Model {
    pub(crate) meta: ExportMeta,
    pub(crate) layers: Vec<RtLayer>,
    pub(crate) path: Format,
    pub(crate) exec: Exec,
    pub(crate) plan: Plan,
    pub(crate) sparse_conv: SparseConv,
}

impl Model {
    /// Builds a sparse-path model straight from in-memory tensors, with the same validation as
    /// [`write_export`](crate::write_export) (useful to check an export, or to run a network
    /// without writing a file).
    pub fn from_export(model: &ExportModel) -> Result<Model, SparseError> {
        let (per, total, plan) = validate::export_model(model, "<memory>")?;
        let mut meta = model.meta.clone();
        meta.density_per_layer = per;
        meta.total_density = total;
        let layers = model
            .layers
            .iter()
            .map(|(spec, t)| RtLayer {
                spec: spec.clone(),
                bias: t.bias.clone(),
                csr: Csr::from_dense_where(
                    spec.out_features(),
                    spec.in_features(),
                    &t.weight,
                    |i| t.mask[i] >= 0.0,
                ),
                dense: None,
                sell: None,
                skip: None,
                conv: conv::ConvPrep::default(),
            })
            .collect();
        Ok(Model::assemble(meta, layers, plan).to_sparse())
    }

    /// A dense-path model from validated parts.
    pub(crate) fn assemble(meta: ExportMeta, layers: Vec<RtLayer>, plan: Plan) -> Model {
        Model {
            meta,
            layers,
            path: Format::Dense,
            exec: Exec::auto(),
            plan,
            sparse_conv: SparseConv::default(),
        }
    }

    /// The metadata the model was exported with.
    pub fn meta(&self) -> &ExportMeta {
        &self.meta
    }

    /// Which kernels [`forward`](Self::forward) uses.
    pub fn path(&self) -> Format {
        self.path
    }

    /// The layer specs in execution order.
    pub fn layer_specs(&self) -> Vec<LayerSpec> {
        self.layers.iter().map(|l| l.spec.clone()).collect()
    }

    /// Values per input example (`prod(input_shape)`).
    pub fn input_len(&self) -> usize {
        self.plan.input.len()
    }

    /// Logits per example (`classes`: what the last layer outputs).
    pub fn classes(&self) -> usize {
        self.meta.classes
    }

    /// `(name, [C, H, W])` of every layer's output per example, in execution order, as worked
    /// out from the specs at load time (a flat vector of `n` values is `[n, 1, 1]`).
    pub fn layer_shapes(&self) -> Vec<(String, [usize; 3])> {
        self.layers
            .iter()
            .zip(&self.plan.nodes)
            .map(|(l, n)| (l.spec.name().to_string(), [n.out.c, n.out.h, n.out.w]))
            .collect()
    }

    /// Chooses the sparse path's convolution kernel (default [`SparseConv::Auto`]); the
    /// dense path and linear layers are unaffected.
    pub fn with_sparse_conv(mut self, algo: SparseConv) -> Model {
        self.sparse_conv = algo;
        if self.path == Format::Sparse {
            self.prepare_convs();
        }
        self
    }

    /// Precomputes, per convolution, what the chosen sparse kernel needs (shifted taps, the
    /// lowered matrix).
    fn prepare_convs(&mut self) {
        let algo = self.sparse_conv;
        for (l, node) in self.layers.iter_mut().zip(&self.plan.nodes) {
            if let Some(g) = conv_geom(&l.spec, node.in_shape) {
                l.conv = conv::ConvPrep::new(algo, &g, &l.csr, l.bias.as_deref());
            }
        }
    }

    /// The sparse path's convolution kernel.
    pub fn sparse_conv(&self) -> SparseConv {
        self.sparse_conv
    }

    /// Computes the logits, `batch x classes` row-major, of the inputs `x`
    /// (`batch x prod(input_shape)` row-major).
    ///
    /// Batch 1 runs matrix-vector kernels on the calling thread; larger batches run the batched
    /// kernels. With more than one thread in the current rayon pool, a call of at least
    /// `par_min_work / BATCH_SPLIT_SHARE` multiply-adds is split into one sub-batch per thread,
    /// each run on one thread (vgg-narrow at 95%, best per call: batch 8 on 2 threads
    /// 567–647 → 417–452 µs; on a 16-core Xeon batch 32 on 16 threads 812 → 320 µs); smaller
    /// calls split only single layers of at least `par_min_work`.
    pub fn forward(&self, x: &[f32], batch: usize) -> Result<Vec<f32>, SparseError> {
        let n_in = self.input_len();
        let expected = batch.checked_mul(n_in).ok_or_else(|| {
            SparseError::Input(format!("batch {batch} x {n_in} inputs overflows"))
        })?;
        if x.len() != expected {
            return Err(SparseError::Input(format!(
                "got {} input values, expected batch {batch} x {n_in} = {expected}",
                x.len()
            )));
        }
        if batch == 0 {
            return Ok(Vec::new());
        }
        // (batch 1 has nothing to split: no need to count its work)
        let pieces = match batch {
            1 => 1,
            _ => self
                .exec
                .batch_pieces(self.macs_per_example().saturating_mul(batch), batch),
        };
        if pieces < 2 {
            return Ok(self.forward_on(self.exec, x, batch));
        }
        // whole sub-batches across threads, each run serially: one fork/join per call
        let inner = Exec {
            par_min_work: usize::MAX,
            ..self.exec
        };
        let per = sub_batch(batch, pieces);
        let k = self.classes();
        let mut logits = vec![0.0f32; batch * k];
        logits
            .par_chunks_mut(per * k)
            .zip(x.par_chunks(per * n_in))
            .for_each(|(y, xs)| y.copy_from_slice(&self.forward_on(inner, xs, xs.len() / n_in)));
        Ok(logits)
    }

    /// [`forward`](Self::forward) on validated inputs with the kernel settings `exec`.
    fn forward_on(&self, exec: Exec, x: &[f32], batch: usize) -> Vec<f32> {
        if !self.plan.mlp_chain {
            return self.forward_graph(exec, x, batch, None);
        }
        if batch == 1 {
            self.forward_vec(exec, x)
        } else if batch <= self.per_example_max_batch() {
            x.chunks_exact(self.input_len())
                .flat_map(|xe| self.forward_vec(exec, xe))
                .collect()
        } else if self.path == Format::Sparse {
            self.forward_sparse_batch(exec, x, batch)
        } else {
            self.forward_dense_batch(exec, x, batch)
        }
    }

    /// Multiply-adds of one example on this model's path (its kernels' work: kept weights
    /// on the sparse path, all weights on the dense one; conv2d weights once per output
    /// position).
    fn macs_per_example(&self) -> usize {
        self.layers
            .iter()
            .zip(&self.plan.nodes)
            .map(|(l, node)| {
                let weights = match (l.spec.has_weights(), self.path) {
                    (false, _) => 0,
                    (true, Format::Sparse) => l.csr.nnz(),
                    (true, Format::Dense) => l.csr.rows * l.csr.cols,
                };
                let positions = match l.spec {
                    LayerSpec::Conv2d { .. } => node.out.h * node.out.w,
                    _ => 1,
                };
                weights.saturating_mul(positions)
            })
            .fold(0usize, usize::saturating_add)
    }

    /// Largest batch this model's path runs example by example on its batch-1 kernels.
    fn per_example_max_batch(&self) -> usize {
        match self.path {
            Format::Sparse => PER_EXAMPLE_MAX_BATCH,
            Format::Dense => DENSE_PER_EXAMPLE_MAX_BATCH,
        }
    }

    /// The predicted class (index of the largest logit; the first one on ties) per example.
    pub fn predict(&self, x: &[f32], batch: usize) -> Result<Vec<usize>, SparseError> {
        let logits = self.forward(x, batch)?;
        let k = self.classes().max(1);
        Ok(logits.chunks(k).map(argmax).collect())
    }

    /// Batch 1: one scratch region per layer output (each followed by a 0 for the SELL
    /// kernel's padding lanes), logits copied out.
    fn forward_vec(&self, exec: Exec, x: &[f32]) -> Vec<f32> {
        let total: usize =
            self.input_len() + 1 + self.layers.iter().map(|l| l.csr.rows + 1).sum::<usize>();
        with_scratch(total, |buf| {
            let (mut cur, mut rest) = buf.split_at_mut(x.len() + 1);
            cur[..x.len()].copy_from_slice(x);
            cur[x.len()] = 0.0;
            for l in &self.layers {
                let (out, tail) = rest.split_at_mut(l.csr.rows + 1);
                out[l.csr.rows] = 0.0;
                let y = &mut out[..l.csr.rows];
                let bias = l.bias.as_deref();
                let act = l.spec.activation();
                let input = &cur[..l.csr.cols];
                // the first layer skips the input's background when that pays (input_skip.rs)
                let skip = l.skip.as_ref().filter(|s| s.pays(input));
                match (skip, &l.dense, &l.sell, self.path) {
                    (Some(s), ..) => s.forward(input, act, y),
                    (None, Some(w), _, Format::Dense) => {
                        kernels::matvec(exec, w, l.csr.rows, l.csr.cols, input, bias, act, y)
                    }
                    (None, _, Some(sell), Format::Sparse) if exec.isa != Isa::Generic => {
                        kernels::sell8_mv(exec, sell, cur, act, y)
                    }
                    _ => kernels::spmv(exec, &l.csr, input, bias, act, y),
                }
                cur = out;
                rest = tail;
            }
            cur[..self.classes()].to_vec()
        })
    }

    /// Batched sparse: feature-major activations ping-pong between two scratch regions.
    fn forward_sparse_batch(&self, exec: Exec, x: &[f32], batch: usize) -> Vec<f32> {
        let width = self.max_width() * batch;
        let mut logits = vec![0.0f32; self.classes() * batch];
        with_scratch(2 * width, |buf| {
            let (mut a, mut b) = buf.split_at_mut(width);
            kernels::transpose(exec.isa, x, batch, self.input_len(), &mut a[..x.len()]);
            for l in &self.layers {
                kernels::spmm_t(
                    exec,
                    &l.csr,
                    &a[..l.csr.cols * batch],
                    batch,
                    l.bias.as_deref(),
                    l.spec.activation(),
                    &mut b[..l.csr.rows * batch],
                );
                std::mem::swap(&mut a, &mut b);
            }
            kernels::transpose(
                exec.isa,
                &a[..logits.len()],
                self.classes(),
                batch,
                &mut logits,
            );
        });
        logits
    }

    /// Batched dense: row-major activations ping-pong between two scratch regions.
    fn forward_dense_batch(&self, exec: Exec, x: &[f32], batch: usize) -> Vec<f32> {
        let width = self.max_width() * batch;
        with_scratch(2 * width, |buf| {
            let (mut a, mut b) = buf.split_at_mut(width);
            a[..x.len()].copy_from_slice(x);
            for l in &self.layers {
                let owned;
                let w: &[f32] = match &l.dense {
                    Some(w) => w,
                    None => {
                        owned = l.csr.to_dense();
                        &owned
                    }
                };
                kernels::matmul(
                    exec,
                    w,
                    l.csr.rows,
                    l.csr.cols,
                    &a[..l.csr.cols * batch],
                    batch,
                    l.bias.as_deref(),
                    l.spec.activation(),
                    &mut b[..l.csr.rows * batch],
                );
                std::mem::swap(&mut a, &mut b);
            }
            a[..self.classes() * batch].to_vec()
        })
    }

    /// Any network (convolutions, pooling, residual sums): batch-major `N x C x H x W`
    /// tensors, one buffer per live layer output, recycled after its last reader.
    fn forward_graph(
        &self,
        exec: Exec,
        x: &[f32],
        batch: usize,
        mut times: Option<&mut [std::time::Duration]>,
    ) -> Vec<f32> {
        let n = self.layers.len();
        let mut last_use = vec![0usize; n + 1];
        let mut readers = vec![0usize; n + 1];
        for (i, node) in self.plan.nodes.iter().enumerate() {
            for &s in &node.inputs {
                last_use[s] = i;
                readers[s] += 1;
            }
        }
        last_use[n] = usize::MAX;
        let mut bufs: Vec<Option<Vec<f32>>> = vec![None; n + 1];
        // buffers from earlier calls on this thread (re-entrant calls just start empty)
        let mut pool: Vec<Vec<f32>> = GRAPH_BUFS
            .try_with(|c| std::mem::take(&mut *c.borrow_mut()))
            .unwrap_or_default();
        let mut pooled_already = false;
        for (i, (l, node)) in self.layers.iter().zip(&self.plan.nodes).enumerate() {
            if std::mem::take(&mut pooled_already) {
                continue; // this max pool ran inside the conv before it
            }
            // a conv whose only reader is a 2x2 max pool runs both in one pass where its
            // kernel can (the per-layer timings keep them apart)
            let fused = times.is_none()
                && readers.get(i + 1) == Some(&1)
                && self.pool_fuses(i, node, batch);
            let (dst, dst_node) = if fused {
                (i + 2, &self.plan.nodes[i + 1])
            } else {
                (i + 1, node)
            };
            let len = dst_node.out.len() * batch;
            // the smallest free buffer that holds the output, else the largest, grown. Buffers
            // keep their full length (every kernel overwrites the part it is given), so one is
            // zero-filled only when it grows, never on reuse.
            let fits = (0..pool.len())
                .filter(|&k| pool[k].len() >= len)
                .min_by_key(|&k| pool[k].len());
            let best = fits.or_else(|| (0..pool.len()).max_by_key(|&k| pool[k].len()));
            let mut out = best.map(|k| pool.swap_remove(k)).unwrap_or_default();
            if out.len() < len {
                out.resize(len, 0.0);
            }
            {
                let get = |slot: usize| -> &[f32] {
                    if slot == 0 {
                        x
                    } else {
                        let want = self.plan.nodes[slot - 1].out.len() * batch;
                        bufs[slot].as_deref().map_or(&[], |b| &b[..want])
                    }
                };
                let t0 = std::time::Instant::now();
                self.run_layer(
                    exec,
                    l,
                    node,
                    get(node.inputs[0]),
                    node.inputs.get(1).map(|&s| get(s)),
                    batch,
                    fused,
                    &mut out[..len],
                );
                if let Some(t) = times.as_deref_mut() {
                    t[i] += t0.elapsed();
                }
            }
            bufs[dst] = Some(out);
            pooled_already = fused;
            for &s in &node.inputs {
                if s > 0 && last_use[s] == i {
                    if let Some(b) = bufs[s].take() {
                        pool.push(b);
                    }
                }
            }
        }
        // the logits are copied out, so the last buffer stays in the pool for the next call
        let out_len = self.plan.nodes.last().map_or(0, |nd| nd.out.len() * batch);
        let result = bufs[n]
            .as_deref()
            .map_or_else(Vec::new, |b| b[..out_len].to_vec());
        pool.extend(bufs.into_iter().flatten());
        let kept: usize = pool.iter().map(|b| b.capacity()).sum();
        if kept <= GRAPH_KEEP {
            let _ = GRAPH_BUFS.try_with(|c| {
                let mut slot = c.borrow_mut();
                if slot.is_empty() {
                    *slot = pool;
                }
            });
        }
        result
    }

    /// Where the time of a forward call goes: per layer (name, time per call), the minimum
    /// over `runs` calls of the layer-by-layer path every network can take (the MLP fast
    /// paths fuse layers and are not split; convs run apart from the max pools that a forward
    /// call runs inside them). For finding the layer to work on, not for
    /// headline numbers.
    pub fn layer_times(
        &self,
        x: &[f32],
        batch: usize,
        runs: usize,
    ) -> Result<Vec<(String, std::time::Duration)>, SparseError> {
        if x.len() != batch * self.input_len() || batch == 0 {
            return Err(SparseError::Input(format!(
                "got {} input values, expected batch {batch} x {}",
                x.len(),
                self.input_len()
            )));
        }
        let n = self.layers.len();
        let mut best = vec![std::time::Duration::MAX; n];
        for _ in 0..runs.max(1) {
            let mut t = vec![std::time::Duration::ZERO; n];
            let _ = self.forward_graph(self.exec, x, batch, Some(&mut t));
            for (b, t) in best.iter_mut().zip(t) {
                *b = (*b).min(t);
            }
        }
        Ok(self
            .layers
            .iter()
            .zip(best)
            .map(|(l, t)| (l.spec.name().to_string(), t))
            .collect())
    }

    /// Whether layer `i` (a conv on the sparse path) and the 2x2, stride-2, unpadded max pool
    /// right after it that reads only its output run as one pass at this batch size
    /// ([`conv::pool_fuses`]; the caller checks that nothing else reads the conv's output).
    fn pool_fuses(&self, i: usize, node: &crate::graph::Node, batch: usize) -> bool {
        let (Some(l), Some(next), Some(pool)) = (
            self.layers.get(i),
            self.plan.nodes.get(i + 1),
            self.layers.get(i + 1),
        ) else {
            return false;
        };
        let is_pool2 = matches!(
            pool.spec,
            LayerSpec::MaxPool2d {
                kernel: [2, 2],
                stride: [2, 2],
                padding: [0, 0],
                ..
            }
        );
        if self.path != Format::Sparse || !is_pool2 || next.inputs != [i + 1] {
            return false;
        }
        match conv_geom(&l.spec, node.in_shape) {
            Some(g) => {
                next.out.h == g.ho / 2
                    && next.out.w == g.wo / 2
                    && conv::pool_fuses(self.sparse_conv, &g, &l.csr, &l.conv, batch)
            }
            None => false,
        }
    }

    /// One layer of [`forward_graph`](Self::forward_graph) on a batch-major batch; with
    /// `pooled` (a conv where [`pool_fuses`](Self::pool_fuses) said so) `y` is the output of
    /// the max pool after it, taken in the same pass.
    #[allow(clippy::too_many_arguments)]
    fn run_layer(
        &self,
        exec: Exec,
        l: &RtLayer,
        node: &crate::graph::Node,
        x: &[f32],
        x2: Option<&[f32]>,
        batch: usize,
        pooled: bool,
        y: &mut [f32],
    ) {
        let bias = l.bias.as_deref();
        let act = l.spec.activation();
        let sparse = self.path == Format::Sparse;
        match &l.spec {
            LayerSpec::Linear { .. } => {
                let (rows, cols) = (l.csr.rows, l.csr.cols);
                match (&l.dense, sparse, batch) {
                    (Some(w), false, 1) => kernels::matvec(exec, w, rows, cols, x, bias, act, y),
                    (Some(w), false, _) => {
                        kernels::matmul(exec, w, rows, cols, x, batch, bias, act, y)
                    }
                    _ => kernels::sparse_linear(
                        exec,
                        &l.csr,
                        l.sell.as_ref(),
                        bias,
                        x,
                        batch,
                        act,
                        y,
                    ),
                }
            }
            LayerSpec::Conv2d { .. } => {
                let Some(g) = conv_geom(&l.spec, node.in_shape) else {
                    return; // unreachable: the plan was validated with the same geometry
                };
                match (&l.dense, sparse) {
                    (Some(w), false) => {
                        conv::conv_dense(exec, &g, w, l.csr.rows, x, batch, bias, act, y)
                    }
                    _ => conv::conv_sparse(
                        exec,
                        self.sparse_conv,
                        &g,
                        &l.csr,
                        &l.conv,
                        x,
                        batch,
                        bias,
                        conv::Epilogue { act, pool: pooled },
                        y,
                    ),
                }
            }
            LayerSpec::MaxPool2d {
                kernel,
                stride,
                padding,
                ..
            }
            | LayerSpec::AvgPool2d {
                kernel,
                stride,
                padding,
                ..
            } => {
                if let Ok(g) = Geom::new(node.in_shape, *kernel, *stride, *padding) {
                    let max = matches!(l.spec, LayerSpec::MaxPool2d { .. });
                    conv::pool(exec, &g, max, x, y);
                }
            }
            LayerSpec::GlobalAvgPool { .. } => {
                conv::global_avg_pool(node.in_shape.h * node.in_shape.w, x, y)
            }
            LayerSpec::Flatten { .. } => y.copy_from_slice(x),
            LayerSpec::Add { .. } => conv::add(x, x2.unwrap_or(&[]), act, y),
        }
    }

    /// Widest activation (input or any layer output).
    fn max_width(&self) -> usize {
        self.layers
            .iter()
            .map(|l| l.csr.rows)
            .chain(std::iter::once(self.input_len()))
            .max()
            .unwrap_or(0)
    }

    /// The same network on the runtime's dense path (dense row-major weights, dense kernels):
    /// the honest baseline that pruning is compared against. Materialises every weight matrix
    /// (`4 · out · in` bytes per layer).
    pub fn to_dense(&self) -> Model {
        let mut m = self.clone();
        for l in &mut m.layers {
            if l.dense.is_none() && l.spec.has_weights() {
                l.dense = Some(l.csr.to_dense());
            }
            l.sell = None;
            l.skip = None;
            l.conv = conv::ConvPrep::default();
        }
        m.path = Format::Dense;
        m
    }

    /// The same network on the sparse path (CSR kernels).
    pub fn to_sparse(&self) -> Model {
        let mut m = self.clone();
        for l in &mut m.layers {
            l.dense = None;
            if l.sell.is_none() && matches!(l.spec, LayerSpec::Linear { .. }) {
                l.sell = Some(Sell8::from_csr(&l.csr, l.bias.as_deref()));
            }
        }
        m.prepare_convs();
        // The first layer skips the input's background. (Skipping the zeros after a ReLU the
        // same way measured no faster on LeNet-300-100 at 98%: about half of them are zero.)
        if m.plan.mlp_chain {
            if let Some(l) = m.layers.first_mut() {
                if l.skip.is_none() {
                    l.skip = Some(InputSkip::for_input(&m.meta, &l.csr, l.bias.as_deref()));
                }
            }
        }
        m.path = Format::Sparse;
        m
    }

    /// Exact multiply-add counts per layer with weights (linear, conv2d) for one example.
    pub fn flops(&self) -> Vec<LayerFlops> {
        self.layers
            .iter()
            .zip(&self.plan.nodes)
            .filter(|(l, _)| l.spec.has_weights())
            .map(|(l, node)| {
                let total = l.csr.rows * l.csr.cols;
                // output positions per weight: H_out·W_out for conv2d, 1 for linear
                let positions = match l.spec {
                    LayerSpec::Conv2d { .. } => (node.out.h * node.out.w) as u64,
                    _ => 1,
                };
                LayerFlops {
                    name: l.spec.name().to_string(),
                    dense_macs: total as u64 * positions,
                    sparse_macs: l.csr.nnz() as u64 * positions,
                    nnz: l.csr.nnz(),
                    total,
                }
            })
            .collect()
    }

    /// `(name, weight out x in row-major with zeros where pruned, bias)` per layer with
    /// weights (conv2d: `out x (in·kh·kw)`, i.e. the `[out, in, kh, kw]` tensor flattened), e.g.
    /// to build the same network in another framework.
    pub fn dense_weights(&self) -> Vec<(String, Vec<f32>, Option<Vec<f32>>)> {
        self.layers
            .iter()
            .filter(|l| l.spec.has_weights())
            .map(|l| {
                let w = l.dense.clone().unwrap_or_else(|| l.csr.to_dense());
                (l.spec.name().to_string(), w, l.bias.clone())
            })
            .collect()
    }

    /// The network back as an in-memory export: the same metadata and layer specs, per layer
    /// with weights the dense weight (zeros where pruned) and a mask of `1.0` where a weight is
    /// stored (kept, even if its value is 0) and `-1.0` elsewhere, so the densities are exactly
    /// those of the file. `write_export` of the result writes an equivalent file; converters
    /// (e.g. to ONNX) start from it.
    pub fn to_export(&self) -> ExportModel {
        let layers = self
            .layers
            .iter()
            .map(|l| {
                if !l.spec.has_weights() {
                    return (l.spec.clone(), crate::LayerTensors::default());
                }
                let mut mask = vec![-1.0f32; l.csr.rows * l.csr.cols];
                for r in 0..l.csr.rows {
                    for k in l.csr.row_ptr[r]..l.csr.row_ptr[r + 1] {
                        mask[r * l.csr.cols + l.csr.col_idx[k] as usize] = 1.0;
                    }
                }
                let weight = l.dense.clone().unwrap_or_else(|| l.csr.to_dense());
                (
                    l.spec.clone(),
                    crate::LayerTensors {
                        weight,
                        bias: l.bias.clone(),
                        mask,
                    },
                )
            })
            .collect();
        ExportModel {
            meta: self.meta.clone(),
            layers,
        }
    }

    /// Sets the multi-threading threshold: a layer call with fewer multiply-adds than
    /// `min_macs` runs on the calling thread (default [`PAR_MIN_WORK`](crate::PAR_MIN_WORK);
    /// `usize::MAX` never spawns, 0 always splits). Both paths follow the same threshold, so
    /// comparisons stay fair.
    pub fn with_par_min_work(mut self, min_macs: usize) -> Model {
        self.exec.par_min_work = min_macs;
        self
    }

    /// Runs the model with explicit kernel settings (tests: force an ISA or threading).
    #[cfg(test)]
    pub(crate) fn with_exec(mut self, exec: Exec) -> Model {
        self.exec = exec;
        self
    }

    /// The logits with every layer run on its own (no conv and pool in one pass; tests).
    #[cfg(test)]
    pub(crate) fn forward_unfused(&self, x: &[f32], batch: usize) -> Vec<f32> {
        let mut t = vec![std::time::Duration::ZERO; self.layers.len()];
        self.forward_graph(self.exec, x, batch, Some(&mut t))
    }

    /// The logits of the layer-by-layer path with convs and their pools in one pass where
    /// they can be, the batch never split across threads (tests).
    #[cfg(test)]
    pub(crate) fn forward_whole_batch(&self, x: &[f32], batch: usize) -> Vec<f32> {
        self.forward_graph(self.exec, x, batch, None)
    }

    /// Layers `i` whose max pool runs inside them at this batch size (tests).
    #[cfg(test)]
    pub(crate) fn pooled_convs(&self, batch: usize) -> Vec<usize> {
        (0..self.layers.len())
            .filter(|&i| self.pool_fuses(i, &self.plan.nodes[i], batch))
            .collect()
    }

    /// The runtime layers (tests).
    #[cfg(test)]
    pub(crate) fn rt_layers(&self) -> &[RtLayer] {
        &self.layers
    }
}

/// Examples per sub-batch when `batch` is split into `pieces`: an even share, rounded up to a
/// whole register tile of 8 examples when the share is at least that large.
pub(crate) fn sub_batch(batch: usize, pieces: usize) -> usize {
    let per = batch.div_ceil(pieces.max(1));
    if per >= 8 {
        per.next_multiple_of(8).min(batch)
    } else {
        per
    }
}

fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = i;
        }
    }
    best
}

/// Scratch buffers larger than this (in f32s) are not kept between calls.
const SCRATCH_KEEP: usize = 1 << 22;

/// Graph-path tensor buffers (in f32s, all together) larger than this are not kept between
/// calls.
const GRAPH_KEEP: usize = 1 << 23;

/// The geometry of a convolution layer over `input` (`None` for other layers, or a geometry
/// that does not fit, which validation already refused).
fn conv_geom(spec: &LayerSpec, input: crate::graph::Shape) -> Option<Geom> {
    match spec {
        LayerSpec::Conv2d {
            kernel,
            stride,
            padding,
            dilation,
            groups,
            ..
        } => Geom::conv(input, *kernel, *stride, *padding, *dilation, *groups).ok(),
        _ => None,
    }
}

thread_local! {
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static GRAPH_BUFS: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on a per-thread scratch buffer of at least `n` floats (contents unspecified), so
/// a forward pass allocates nothing but its result. The buffer is taken out of the
/// thread-local slot for the call, so a re-entrant call (a rayon worker running another
/// `forward` while it waits) simply gets a fresh one.
pub(crate) fn with_scratch<R>(n: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    let mut v = SCRATCH
        .try_with(|c| std::mem::take(&mut *c.borrow_mut()))
        .unwrap_or_default();
    if v.len() < n {
        v.resize(n, 0.0);
    }
    let r = f(&mut v[..n]);
    if v.len() <= SCRATCH_KEEP {
        let _ = SCRATCH.try_with(|c| {
            let mut slot = c.borrow_mut();
            if slot.len() < v.len() {
                *slot = v;
            }
        });
    }
    r
}
