//! `hf-sparse` layers → a standard ONNX model.
