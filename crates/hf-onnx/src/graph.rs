//! The imported network: a layer graph with its initial tensors.
