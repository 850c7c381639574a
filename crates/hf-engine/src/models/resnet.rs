//! ResNets in the CIFAR layout (spec §5): a 3×3 stride-1 stem with BN and ReLU and no max-pool,
//! stages of residual blocks (the first block of a stage strides by 2, except in the first
//! stage), 1×1 projection shortcuts with BN wherever the shape changes, global average pooling,
//! one linear layer. Bottleneck blocks (1×1, 3×3 with the stride, 1×1 to 4× the width) for
//! ResNet-50; basic blocks (two 3×3) for ResNet-20. Convolutions are bias-free.

use super::{global_avg_pool, too_small, Body, Builder, Exporter};
use crate::conv::{Conv2d, ConvSpec, Linear};
use crate::norm::BatchNorm2d;
use crate::EngineError;
use tch::Tensor;

/// The kind of residual block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    /// Two 3×3 convs; output width = the stage width.
    Basic,
    /// 1×1, 3×3, 1×1 convs; output width = 4 × the stage width.
    Bottleneck,
}

impl BlockKind {
    /// Output channels of a block of stage width `w`.
    pub fn out_channels(&self, w: i64) -> i64 {
        match self {
            BlockKind::Basic => w,
            BlockKind::Bottleneck => 4 * w,
        }
    }
}

/// A ResNet layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResNetSpec {
    /// Block kind.
    pub block: BlockKind,
    /// Stem output channels.
    pub stem: i64,
    /// Per stage: (width, number of blocks).
    pub stages: &'static [(i64, usize)],
}

/// ResNet-50 (CIFAR): stem 64, bottleneck stages `[3,4,6,3]` of widths 64…512;
/// N = 23,467,712 on CIFAR-10.
pub const RESNET50: ResNetSpec = ResNetSpec {
    block: BlockKind::Bottleneck,
    stem: 64,
    stages: &[(64, 3), (128, 4), (256, 6), (512, 3)],
};

/// ResNet-20 (CIFAR, He et al. 2016) with projection shortcuts: stem 16, basic stages
/// `[3,3,3]` of widths 16/32/64; N = 270,896 on CIFAR-10.
pub const RESNET20: ResNetSpec = ResNetSpec {
    block: BlockKind::Basic,
    stem: 16,
    stages: &[(16, 3), (32, 3), (64, 3)],
};

/// One residual block.
struct Block {
    convs: Vec<(Conv2d, BatchNorm2d)>,
    shortcut: Option<(Conv2d, BatchNorm2d)>,
}

impl Block {
    fn new(b: &mut Builder, name: &str, kind: BlockKind, in_c: i64, w: i64, stride: i64) -> Self {
        let specs = match kind {
            BlockKind::Basic => vec![
                ConvSpec::same(in_c, w, 3).stride(stride),
                ConvSpec::same(w, w, 3),
            ],
            BlockKind::Bottleneck => vec![
                ConvSpec::same(in_c, w, 1),
                ConvSpec::same(w, w, 3).stride(stride),
                ConvSpec::same(w, 4 * w, 1),
            ],
        };
        let convs = specs
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                let conv = b.conv(&format!("{name}.conv{}", i + 1), s, false);
                let bn = b.bn(&format!("{name}.bn{}", i + 1), s.out_c);
                (conv, bn)
            })
            .collect();
        let out_c = kind.out_channels(w);
        let shortcut = (stride != 1 || in_c != out_c).then(|| {
            let conv = b.conv(
                &format!("{name}.shortcut.conv"),
                ConvSpec::same(in_c, out_c, 1).stride(stride),
                false,
            );
            let bn = b.bn(&format!("{name}.shortcut.bn"), out_c);
            (conv, bn)
        });
        Self { convs, shortcut }
    }

    fn forward(&self, x: &Tensor, eff: &[Tensor], train: bool) -> Tensor {
        let last = self.convs.len() - 1;
        let mut h = x.shallow_clone();
        for (i, (conv, bn)) in self.convs.iter().enumerate() {
            h = bn.forward(&conv.forward(&h, eff), train);
            if i != last {
                h = h.relu();
            }
        }
        let short = match &self.shortcut {
            Some((conv, bn)) => bn.forward(&conv.forward(x, eff), train),
            None => x.shallow_clone(),
        };
        (h + short).relu()
    }

    /// Appends the block reading the last output of `e`: the convs (ReLU between them, none
    /// after the last), the projection shortcut from the block input when there is one, and
    /// the residual add with its ReLU (named `{block}.add`, e.g. `layer1.0.add`).
    fn export(&self, e: &mut Exporter<'_>) -> Result<(), String> {
        let x = e.current().to_string();
        let last = self.convs.len() - 1;
        let mut h = x.clone();
        for (i, (conv, bn)) in self.convs.iter().enumerate() {
            h = e.conv(conv, Some(bn), i != last, &h)?;
        }
        let short = match &self.shortcut {
            Some((conv, bn)) => e.conv(conv, Some(bn), false, &x)?,
            None => x,
        };
        let name = match h.rsplit_once('.') {
            Some((block, _)) => format!("{block}.add"),
            None => format!("{h}.add"),
        };
        e.add(&name, &h, &short, true);
        Ok(())
    }

    fn buffers(&self) -> impl Iterator<Item = (String, Tensor)> + '_ {
        self.convs
            .iter()
            .chain(self.shortcut.iter())
            .flat_map(|(_, bn)| bn.buffers())
    }
}

/// A ResNet wiring.
pub struct ResNet {
    stem: (Conv2d, BatchNorm2d),
    blocks: Vec<Block>,
    classifier: Linear,
}

impl ResNet {
    /// Creates the layers of `spec` in `b` for inputs `input` (C, H, W).
    pub fn new(
        b: &mut Builder,
        spec: &ResNetSpec,
        input: [i64; 3],
        classes: i64,
    ) -> Result<Self, EngineError> {
        // Each stage after the first halves the side (3×3 or 1×1 conv, stride 2, "same"
        // padding: ceil(n / 2)), so any side >= 1 works; ask for enough to keep a meaningful
        // receptive field.
        let need = 1i64 << (spec.stages.len() - 1);
        if input[1] < need || input[2] < need {
            let arch = match spec.block {
                BlockKind::Basic => "resnet20",
                BlockKind::Bottleneck => "resnet50",
            };
            return Err(too_small(arch, input, need));
        }
        let stem_conv = b.conv("conv1", ConvSpec::same(input[0], spec.stem, 3), false);
        let stem_bn = b.bn("bn1", spec.stem);
        let mut blocks = Vec::new();
        let mut in_c = spec.stem;
        for (si, &(w, n)) in spec.stages.iter().enumerate() {
            for bi in 0..n {
                let stride = if si > 0 && bi == 0 { 2 } else { 1 };
                let name = format!("layer{}.{bi}", si + 1);
                blocks.push(Block::new(b, &name, spec.block, in_c, w, stride));
                in_c = spec.block.out_channels(w);
            }
        }
        let classifier = b.linear("linear", in_c, classes);
        Ok(Self {
            stem: (stem_conv, stem_bn),
            blocks,
            classifier,
        })
    }
}

impl Body for ResNet {
    fn forward(&self, x: &Tensor, eff: &[Tensor], train: bool) -> Tensor {
        let (conv, bn) = &self.stem;
        let mut h = bn.forward(&conv.forward(x, eff), train).relu();
        for block in &self.blocks {
            h = block.forward(&h, eff, train);
        }
        self.classifier.forward(&global_avg_pool(&h), eff)
    }

    fn export(&self, e: &mut Exporter<'_>) -> Result<(), String> {
        let (conv, bn) = &self.stem;
        e.conv(conv, Some(bn), true, "input")?;
        for block in &self.blocks {
            block.export(e)?;
        }
        e.global_avg_pool();
        e.linear(&self.classifier, false)?;
        Ok(())
    }

    fn buffers(&self) -> Vec<(String, Tensor)> {
        let mut out: Vec<(String, Tensor)> = self.stem.1.buffers().into_iter().collect();
        for block in &self.blocks {
            out.extend(block.buffers());
        }
        out
    }
}
