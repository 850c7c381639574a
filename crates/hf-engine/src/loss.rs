//! Cross-entropy with label smoothing (PyTorch semantics: target `(1−ε)·onehot + ε/K`), with its
//! closed-form gradient for the hand-written backward pass.

use tch::{Kind, Reduction, Tensor};

/// Mean label-smoothed cross-entropy of `logits` (B×K) against `labels` (B, int64).
pub fn cross_entropy(logits: &Tensor, labels: &Tensor, smoothing: f64) -> Tensor {
    logits.cross_entropy_loss::<Tensor>(labels, None, Reduction::Mean, -100, smoothing)
}

/// Loss value and `∂loss/∂logits = (softmax − q)/B` in one go.
pub fn cross_entropy_with_grad(
    logits: &Tensor,
    labels: &Tensor,
    smoothing: f64,
) -> (Tensor, Tensor) {
    let b = logits.size()[0] as f64;
    let k = logits.size()[1];
    let logp = logits.log_softmax(-1, Kind::Float);
    let q = Tensor::full(
        [b as i64, k],
        smoothing / k as f64,
        (Kind::Float, logits.device()),
    )
    .scatter_value(
        1,
        &labels.unsqueeze(1),
        1.0 - smoothing + smoothing / k as f64,
    );
    let loss = -(&q * &logp).sum(Kind::Float) / b;
    let grad = (logp.exp() - q) / b;
    (loss, grad)
}

/// Number of rows whose arg-max equals the label.
pub fn correct(logits: &Tensor, labels: &Tensor) -> i64 {
    logits
        .argmax(-1, false)
        .eq_tensor(labels)
        .sum(Kind::Int64)
        .int64_value(&[])
}
