//! ONNX → [`crate::graph::GraphSpec`].
