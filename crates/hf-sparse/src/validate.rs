//! Consistency checks shared by the exporter, [`Model::from_export`](crate::Model::from_export)
//! and the loader.

use crate::graph::{Geom, Node, Plan, Shape};
use crate::spec::{densities, ratio, ExportMeta, ExportModel, LayerSpec};
use crate::SparseError;
use std::collections::{BTreeSet, HashMap};

/// Largest `out_features * in_features` of one layer the runtime accepts (2^32 weights, 16 GiB
/// dense): guards against absurd shapes in a corrupt file before anything is allocated.
pub const MAX_LAYER_WEIGHTS: usize = 1 << 32;

/// Tolerance when comparing stated densities with the ones the masks or indices give.
pub(crate) const DENSITY_TOL: f64 = 1e-4;

/// Metadata keys written by the exporter; `extra` may not use them.
pub const RESERVED_KEYS: [&str; 12] = [
    "format",
    "architecture",
    "dataset",
    "layers",
    "input_shape",
    "classes",
    "accuracy",
    "density_per_layer",
    "total_density",
    "input_scale",
    "input_mean",
    "input_std",
];

/// Largest tensor (values per example) the runtime accepts anywhere in a network (2^30 values,
/// 4 GiB per example): guards against absurd spatial sizes in a corrupt file.
pub const MAX_TENSOR_VALUES: usize = 1 << 30;

/// `c·h·w` if it fits the runtime's limit.
fn checked_len(c: usize, h: usize, w: usize) -> Option<usize> {
    c.checked_mul(h)?
        .checked_mul(w)
        .filter(|&n| n <= MAX_TENSOR_VALUES)
}

/// Checks one layer's own fields (name, sizes, window parameters), before the graph pass.
fn layer_fields(s: &LayerSpec) -> Result<(), String> {
    let name = s.name();
    if name.is_empty() {
        return Err("a layer has an empty name".into());
    }
    if name == "input" {
        return Err("a layer is named 'input', which is reserved for the network input".into());
    }
    let window = |kernel: [usize; 2], stride: [usize; 2]| -> Result<(), String> {
        if kernel[0] == 0 || kernel[1] == 0 {
            return Err(format!("layer {name} kernel {kernel:?} has a zero size"));
        }
        if stride[0] == 0 || stride[1] == 0 {
            return Err(format!(
                "layer {name} stride {stride:?} has a zero step (must be >= 1)"
            ));
        }
        Ok(())
    };
    match s {
        LayerSpec::Linear { .. } => {
            if s.in_features() == 0 || s.out_features() == 0 {
                return Err(format!(
                    "layer {name} has shape {} x {} (zero-width layers are not allowed)",
                    s.out_features(),
                    s.in_features()
                ));
            }
        }
        LayerSpec::Conv2d {
            in_channels,
            out_channels,
            kernel,
            stride,
            dilation,
            groups,
            ..
        } => {
            if *in_channels == 0 || *out_channels == 0 {
                return Err(format!(
                    "layer {name} has {out_channels} output and {in_channels} input channels (zero-width layers are not allowed)"
                ));
            }
            window(*kernel, *stride)?;
            if dilation[0] == 0 || dilation[1] == 0 {
                return Err(format!(
                    "layer {name} dilation {dilation:?} has a zero step (must be >= 1)"
                ));
            }
            if *groups == 0
                || !in_channels.is_multiple_of(*groups)
                || !out_channels.is_multiple_of(*groups)
            {
                return Err(format!(
                    "layer {name} groups {groups} must be >= 1 and divide in_channels {in_channels} and out_channels {out_channels}"
                ));
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
            window(*kernel, *stride)?;
            if padding[0] > kernel[0] / 2 || padding[1] > kernel[1] / 2 {
                return Err(format!(
                    "layer {name} padding {padding:?} is more than half the kernel {kernel:?}"
                ));
            }
        }
        LayerSpec::GlobalAvgPool { .. } | LayerSpec::Flatten { .. } | LayerSpec::Add { .. } => {}
    }
    if s.has_weights() {
        match s.weight_count() {
            Some(n) if n <= MAX_LAYER_WEIGHTS => {}
            _ => {
                return Err(format!(
                    "layer {name} weight shape {:?} is larger than the runtime's limit of {MAX_LAYER_WEIGHTS} weights",
                    s.weight_shape().unwrap_or_default()
                ))
            }
        }
        if s.in_features() > i32::MAX as usize {
            return Err(format!(
                "layer {name} in_features {} exceeds the runtime's limit {}",
                s.in_features(),
                i32::MAX
            ));
        }
    }
    Ok(())
}

/// Checks the layer list against itself and the metadata and works out the execution plan:
/// non-empty, unique names, sane sizes, every named input exists and comes earlier, every
/// layer's input has the shape the layer needs (channels, `in_features`, equal `add`
/// operands, spatial sizes >= 1), the last layer outputs `classes` values.
pub(crate) fn specs(specs: &[&LayerSpec], meta: &ExportMeta) -> Result<Plan, String> {
    if specs.is_empty() {
        return Err("the network has no layers".into());
    }
    let mut names = BTreeSet::new();
    for s in specs {
        layer_fields(s)?;
        if !names.insert(s.name()) {
            return Err(format!("layer name '{}' is used twice", s.name()));
        }
    }
    let dims = &meta.input_shape;
    if let Some(i) = dims.iter().position(|&d| d == 0) {
        return Err(format!(
            "input_shape {dims:?} has a zero size at position {i}"
        ));
    }
    let prod = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= MAX_TENSOR_VALUES)
        .ok_or_else(|| {
            format!("input_shape {dims:?} is larger than the runtime's limit of {MAX_TENSOR_VALUES} values")
        })?;
    let input = match dims[..] {
        [c, h, w] => Shape { c, h, w },
        _ => Shape::flat(prod),
    };
    let mut shapes = vec![input];
    let mut slot_of: HashMap<&str, usize> = HashMap::from([("input", 0usize)]);
    let slot_name = |slot: usize| -> &str {
        if slot == 0 {
            "input"
        } else {
            specs[slot - 1].name()
        }
    };
    let mut nodes = Vec::with_capacity(specs.len());
    for (i, s) in specs.iter().enumerate() {
        let name = s.name();
        let mut inputs = Vec::with_capacity(2);
        for src in s.inputs() {
            let slot = match src {
                None => i,
                Some(n) if n == name => {
                    return Err(format!("layer {name} reads its own output"));
                }
                Some(n) => match slot_of.get(n) {
                    Some(&slot) => slot,
                    None if names.contains(n) => {
                        return Err(format!(
                            "layer {name} reads '{n}', which comes later in the layer list (a layer may only read \"input\" or an earlier layer)"
                        ))
                    }
                    None => {
                        return Err(format!(
                            "layer {name} reads '{n}', which is neither \"input\" nor a layer of this network"
                        ))
                    }
                },
            };
            inputs.push(slot);
        }
        let in_shape = shapes[inputs[0]];
        let src = slot_name(inputs[0]);
        let out = match s {
            LayerSpec::Linear {
                in_features,
                out_features,
                ..
            } => {
                if in_shape.len() != *in_features {
                    return Err(if inputs[0] == 0 {
                        format!(
                            "layer chain mismatch: input_shape {dims:?} has {} values but {} {name} has in_features {in_features}",
                            in_shape.len(),
                            if i == 0 { "the first layer" } else { "layer" }
                        )
                    } else if inputs[0] == i && matches!(specs[i - 1], LayerSpec::Linear { .. }) {
                        format!(
                            "layer chain mismatch: layer {src} has out_features {} but the next layer {name} has in_features {in_features}",
                            in_shape.len()
                        )
                    } else {
                        format!(
                            "layer chain mismatch: layer {name} has in_features {in_features} but its input {src} has shape {in_shape} = {} values",
                            in_shape.len()
                        )
                    });
                }
                Shape::flat(*out_features)
            }
            LayerSpec::Conv2d {
                in_channels,
                out_channels,
                kernel,
                stride,
                padding,
                dilation,
                groups,
                ..
            } => {
                if in_shape.c != *in_channels {
                    return Err(format!(
                        "layer chain mismatch: layer {name} has in_channels {in_channels} but its input {src} has shape {in_shape} ({} channels)",
                        in_shape.c
                    ));
                }
                let g = Geom::conv(in_shape, *kernel, *stride, *padding, *dilation, *groups)
                    .map_err(|e| format!("layer {name} on input {src} of shape {in_shape}: {e}"))?;
                Shape {
                    c: *out_channels,
                    h: g.ho,
                    w: g.wo,
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
                let g = Geom::new(in_shape, *kernel, *stride, *padding)
                    .map_err(|e| format!("layer {name} on input {src} of shape {in_shape}: {e}"))?;
                Shape {
                    c: in_shape.c,
                    h: g.ho,
                    w: g.wo,
                }
            }
            LayerSpec::GlobalAvgPool { .. } => Shape::flat(in_shape.c),
            LayerSpec::Flatten { .. } => Shape::flat(in_shape.len()),
            LayerSpec::Add { .. } => {
                let other = shapes[inputs[1]];
                if other != in_shape {
                    return Err(format!(
                        "layer {name} adds {src} of shape {in_shape} and {} of shape {other}: the shapes differ",
                        slot_name(inputs[1])
                    ));
                }
                in_shape
            }
        };
        if checked_len(out.c, out.h, out.w).is_none() {
            return Err(format!(
                "layer {name} output {out} is larger than the runtime's limit of {MAX_TENSOR_VALUES} values per example"
            ));
        }
        shapes.push(out);
        slot_of.insert(name, i + 1);
        nodes.push(Node {
            inputs,
            in_shape,
            out,
        });
    }
    let last = specs[specs.len() - 1];
    let out = shapes[specs.len()];
    if out.len() != meta.classes {
        return Err(if matches!(last, LayerSpec::Linear { .. }) {
            format!(
                "layer chain mismatch: classes is {} but the last layer {} has out_features {}",
                meta.classes,
                last.name(),
                out.len()
            )
        } else {
            format!(
                "layer chain mismatch: classes is {} but the last layer {} outputs {out} = {} values",
                meta.classes,
                last.name(),
                out.len()
            )
        });
    }
    let mlp_chain = specs
        .iter()
        .zip(&nodes)
        .enumerate()
        .all(|(i, (s, n))| matches!(s, LayerSpec::Linear { .. }) && n.inputs == [i]);
    Ok(Plan {
        input,
        nodes,
        mlp_chain,
    })
}

/// Checks the stated densities against the actual `(name, kept, total)` per layer. An empty
/// `density_per_layer` is accepted (nothing stated).
pub(crate) fn stated_densities(
    meta: &ExportMeta,
    actual: &[(String, usize, usize)],
) -> Result<(), String> {
    if meta.density_per_layer.is_empty() {
        return Ok(());
    }
    if meta.density_per_layer.len() != actual.len() {
        return Err(format!(
            "density_per_layer lists {} layers but the network has {}",
            meta.density_per_layer.len(),
            actual.len()
        ));
    }
    let (mut kept_all, mut total_all) = (0usize, 0usize);
    for ((sname, sd), (name, kept, total)) in meta.density_per_layer.iter().zip(actual) {
        if sname != name {
            return Err(format!(
                "density_per_layer names layer '{sname}' where the network has '{name}'"
            ));
        }
        let d = ratio(*kept, *total);
        if !sd.is_finite() || (sd - d).abs() > DENSITY_TOL {
            return Err(format!(
                "density_per_layer says layer {name} keeps {sd} but it keeps {kept}/{total} = {d}"
            ));
        }
        kept_all += kept;
        total_all += total;
    }
    let d = ratio(kept_all, total_all);
    if !meta.total_density.is_finite() || (meta.total_density - d).abs() > DENSITY_TOL {
        return Err(format!(
            "total_density says {} but the network keeps {kept_all}/{total_all} = {d}",
            meta.total_density
        ));
    }
    Ok(())
}

/// Checks the parts of the metadata that are not about layers.
pub(crate) fn meta_fields(meta: &ExportMeta) -> Result<(), String> {
    if let Some(a) = meta.accuracy {
        // FORMAT.md: a fraction in [0, 1] (not a percentage).
        if !(0.0..=1.0).contains(&a) {
            return Err(format!(
                "accuracy {a} is outside [0, 1] (the format stores a fraction, e.g. 0.98)"
            ));
        }
    }
    if let Some(p) = &meta.preprocessing {
        p.validate(meta.input_channels())?;
    }
    for key in meta.extra.keys() {
        if key.is_empty() {
            return Err("an extra metadata key is empty".into());
        }
        if RESERVED_KEYS.contains(&key.as_str()) {
            return Err(format!(
                "extra metadata key '{key}' is reserved by the format"
            ));
        }
    }
    Ok(())
}

/// What [`export_model`] finds: densities per layer with weights, total density, the plan.
pub(crate) type Checked = (Vec<(String, f64)>, f64, Plan);

/// Validates an in-memory model; returns the densities the masks give (per layer with weights,
/// total) and the execution plan.
pub(crate) fn export_model(model: &ExportModel, file: &str) -> Result<Checked, SparseError> {
    let err = |detail: String| SparseError::InvalidModel {
        file: file.to_string(),
        detail,
    };
    let spec_refs: Vec<&LayerSpec> = model.layers.iter().map(|(s, _)| s).collect();
    let plan = specs(&spec_refs, &model.meta).map_err(err)?;
    meta_fields(&model.meta).map_err(err)?;
    for (spec, t) in &model.layers {
        let name = spec.name();
        if !spec.has_weights() {
            if !t.weight.is_empty() || !t.mask.is_empty() || t.bias.is_some() {
                return Err(err(format!(
                    "layer {name} is a {} layer, which has no weights, but tensors were given for it",
                    spec.type_tag()
                )));
            }
            continue;
        }
        let n = spec.weight_count().unwrap_or(usize::MAX);
        let out = spec.out_features();
        if t.weight.len() != n {
            return Err(err(format!(
                "layer {name} weight has {} values, expected {} = {n}",
                t.weight.len(),
                spec.weight_shape()
                    .unwrap_or_default()
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(" x ")
            )));
        }
        if t.mask.len() != n {
            return Err(err(format!(
                "layer {name} mask has {} values, expected {n}",
                t.mask.len()
            )));
        }
        if let Some(i) = t.mask.iter().position(|m| !m.is_finite()) {
            return Err(err(format!(
                "layer {name} mask[{i}] = {} is not finite",
                t.mask[i]
            )));
        }
        if let Some(i) = (0..n).find(|&i| t.mask[i] >= 0.0 && !t.weight[i].is_finite()) {
            return Err(err(format!(
                "layer {name} weight[{i}] = {} is not finite",
                t.weight[i]
            )));
        }
        match (&t.bias, spec.has_bias()) {
            (Some(b), true) => {
                if b.len() != out {
                    return Err(err(format!(
                        "layer {name} bias has {} values, expected {out}",
                        b.len()
                    )));
                }
                if let Some(i) = b.iter().position(|v| !v.is_finite()) {
                    return Err(err(format!(
                        "layer {name} bias[{i}] = {} is not finite",
                        b[i]
                    )));
                }
            }
            (None, false) => {}
            (Some(_), false) => {
                return Err(err(format!(
                    "layer {name} has a bias tensor but its spec says bias: false"
                )))
            }
            (None, true) => {
                return Err(err(format!(
                    "layer {name} spec says bias: true but no bias tensor was given"
                )))
            }
        }
    }
    let actual: Vec<(String, usize, usize)> = model
        .layers
        .iter()
        .filter(|(s, _)| s.has_weights())
        .map(|(s, t)| (s.name().to_string(), t.kept(), t.mask.len()))
        .collect();
    stated_densities(&model.meta, &actual)
        .map_err(|e| err(format!("{e} (call ExportModel::recompute_densities)")))?;
    let (per, total) = densities(&model.layers);
    Ok((per, total, plan))
}
