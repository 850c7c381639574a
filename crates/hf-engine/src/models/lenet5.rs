//! LeNet-5 (ReLU, max-pooling): conv 6@5×5 → pool → conv 16@5×5 → pool → fc 120 → fc 84 →
//! classes, biases everywhere, no normalisation. On 28×28 inputs the first conv pads by 2 (the
//! classic 32×32 geometry), so both MNIST-sized and CIFAR-sized inputs reach 16×5×5 features.

use super::{max_pool2, too_small, Body, Builder, Exporter};
use crate::conv::{Conv2d, ConvSpec, Linear};
use crate::EngineError;
use tch::Tensor;

/// The LeNet-5 wiring.
pub struct LeNet5 {
    conv1: Conv2d,
    conv2: Conv2d,
    fc: [Linear; 3],
}

impl LeNet5 {
    /// Creates the layers in `b` for inputs `input` (C, H, W).
    pub fn new(b: &mut Builder, input: [i64; 3], classes: i64) -> Result<Self, EngineError> {
        let [c, h, w] = input;
        let pad = ((32 - h.min(w)) / 2).clamp(0, 2);
        let s1 = ConvSpec {
            in_c: c,
            out_c: 6,
            k: 5,
            stride: 1,
            pad,
        };
        let s2 = ConvSpec {
            in_c: 6,
            out_c: 16,
            k: 5,
            stride: 1,
            pad: 0,
        };
        let side = |n: i64| s2.out_size(s1.out_size(n) / 2) / 2;
        let (fh, fw) = (side(h), side(w));
        if fh < 1 || fw < 1 {
            return Err(too_small("lenet5", input, 16 - 2 * pad));
        }
        let feat = 16 * fh * fw;
        Ok(Self {
            conv1: b.conv("conv1", s1, true),
            conv2: b.conv("conv2", s2, true),
            fc: [
                b.linear("fc1", feat, 120),
                b.linear("fc2", 120, 84),
                b.linear("fc3", 84, classes),
            ],
        })
    }
}

impl Body for LeNet5 {
    fn forward(&self, x: &Tensor, eff: &[Tensor], _train: bool) -> Tensor {
        let h = max_pool2(&self.conv1.forward(x, eff).relu());
        let h = max_pool2(&self.conv2.forward(&h, eff).relu());
        let h = h.flatten(1, -1);
        let h = self.fc[0].forward(&h, eff).relu();
        let h = self.fc[1].forward(&h, eff).relu();
        self.fc[2].forward(&h, eff)
    }

    fn buffers(&self) -> Vec<(String, Tensor)> {
        Vec::new()
    }

    fn export(&self, e: &mut Exporter<'_>) -> Result<(), String> {
        for conv in [&self.conv1, &self.conv2] {
            let input = e.current().to_string();
            e.conv(conv, None, true, &input)?;
            e.max_pool2();
        }
        e.flatten();
        e.linear(&self.fc[0], true)?;
        e.linear(&self.fc[1], true)?;
        e.linear(&self.fc[2], false)?;
        Ok(())
    }
}
