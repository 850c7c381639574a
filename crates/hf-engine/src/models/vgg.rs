//! VGG with BatchNorm in the CIFAR layout (spec §5): bias-free 3×3 convs each followed by BN and
//! ReLU, 2×2 max-pools at the `M` entries of the configuration, no pool after the last block,
//! average pooling, one linear layer to the classes.
//!
//! The final average pool is global: on 32×32 inputs VGG-19 ends its convs at 2×2, where the
//! spec's 2×2 average pool and a global one coincide; smaller inputs still work.

use super::{global_avg_pool, max_pool2, too_small, Body, Builder, Exporter};
use crate::conv::{Conv2d, ConvSpec, Linear};
use crate::norm::BatchNorm2d;
use crate::EngineError;
use tch::Tensor;

/// One entry of a VGG configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// A 3×3 conv with this many output channels, then BN and ReLU.
    Conv(i64),
    /// A 2×2 max-pool with stride 2.
    Pool,
}

use Layer::{Conv as C, Pool as M};

/// VGG-19: `[64,64,M,128,128,M,256×4,M,512×4,M,512×4]`, N = 20,024,000 on CIFAR-10.
pub const VGG19: &[Layer] = &[
    C(64),
    C(64),
    M,
    C(128),
    C(128),
    M,
    C(256),
    C(256),
    C(256),
    C(256),
    M,
    C(512),
    C(512),
    C(512),
    C(512),
    M,
    C(512),
    C(512),
    C(512),
    C(512),
];

/// The CPU-sized narrow VGG: `[16,M,32,M,64,64,M,128,128]` (VGG-11's first four stages at a
/// quarter width, three pools so 28×28 inputs end at 3×3), N = 282,512 on Fashion-MNIST.
pub const VGG_NARROW: &[Layer] = &[C(16), M, C(32), M, C(64), C(64), M, C(128), C(128)];

/// A VGG wiring.
pub struct Vgg {
    layers: Vec<(Conv2d, BatchNorm2d)>,
    /// For each entry of `layers`, whether a max-pool follows it.
    pool_after: Vec<bool>,
    classifier: Linear,
}

impl Vgg {
    /// Creates the layers of configuration `cfg` in `b` for inputs `input` (C, H, W).
    pub fn new(
        b: &mut Builder,
        cfg: &[Layer],
        input: [i64; 3],
        classes: i64,
        arch: &str,
    ) -> Result<Self, EngineError> {
        let pools = cfg.iter().filter(|l| **l == M).count() as u32;
        let need = 1i64 << pools;
        if input[1] < need || input[2] < need {
            return Err(too_small(arch, input, need));
        }
        let mut layers = Vec::new();
        let mut pool_after = Vec::new();
        let mut in_c = input[0];
        for l in cfg {
            match *l {
                C(out_c) => {
                    let i = layers.len();
                    let conv = b.conv(
                        &format!("features.{i}.conv"),
                        ConvSpec::same(in_c, out_c, 3),
                        false,
                    );
                    let bn = b.bn(&format!("features.{i}.bn"), out_c);
                    layers.push((conv, bn));
                    pool_after.push(false);
                    in_c = out_c;
                }
                M => {
                    if let Some(p) = pool_after.last_mut() {
                        *p = true;
                    }
                }
            }
        }
        let classifier = b.linear("classifier", in_c, classes);
        Ok(Self {
            layers,
            pool_after,
            classifier,
        })
    }
}

impl Body for Vgg {
    fn forward(&self, x: &Tensor, eff: &[Tensor], train: bool) -> Tensor {
        let mut h = x.shallow_clone();
        for ((conv, bn), pool) in self.layers.iter().zip(&self.pool_after) {
            h = bn.forward(&conv.forward(&h, eff), train).relu();
            if *pool {
                h = max_pool2(&h);
            }
        }
        self.classifier.forward(&global_avg_pool(&h), eff)
    }

    fn buffers(&self) -> Vec<(String, Tensor)> {
        self.layers
            .iter()
            .flat_map(|(_, bn)| bn.buffers())
            .collect()
    }

    fn export(&self, e: &mut Exporter<'_>) -> Result<(), String> {
        for ((conv, bn), pool) in self.layers.iter().zip(&self.pool_after) {
            let input = e.current().to_string();
            e.conv(conv, Some(bn), true, &input)?;
            if *pool {
                e.max_pool2();
            }
        }
        e.global_avg_pool();
        e.linear(&self.classifier, false)?;
        Ok(())
    }
}
