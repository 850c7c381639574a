//! Consistency checks shared by the exporter, [`Model::from_export`](crate::Model::from_export)
//! and the loader.

use crate::spec::{densities, ratio, ExportMeta, ExportModel, LayerSpec};
use crate::SparseError;
use std::collections::BTreeSet;

/// Largest `out_features * in_features` of one layer the runtime accepts (2^32 weights, 16 GiB
/// dense): guards against absurd shapes in a corrupt file before anything is allocated.
pub const MAX_LAYER_WEIGHTS: usize = 1 << 32;

/// Tolerance when comparing stated densities with the ones the masks or indices give.
pub(crate) const DENSITY_TOL: f64 = 1e-4;

/// Metadata keys written by the exporter; `extra` may not use them.
pub const RESERVED_KEYS: [&str; 9] = [
    "format",
    "architecture",
    "dataset",
    "layers",
    "input_shape",
    "classes",
    "accuracy",
    "density_per_layer",
    "total_density",
];

/// Checks the layer list against itself and the metadata: non-empty, unique names, sane sizes,
/// every layer's input = previous output, first input = prod(input_shape), last output =
/// classes.
pub(crate) fn specs(specs: &[&LayerSpec], meta: &ExportMeta) -> Result<(), String> {
    if specs.is_empty() {
        return Err("the network has no layers".into());
    }
    let mut names = BTreeSet::new();
    for s in specs {
        let name = s.name();
        if name.is_empty() {
            return Err("a layer has an empty name".into());
        }
        if !names.insert(name) {
            return Err(format!("layer name '{name}' is used twice"));
        }
        if s.in_features() == 0 || s.out_features() == 0 {
            return Err(format!(
                "layer {name} has shape {} x {} (zero-width layers are not allowed)",
                s.out_features(),
                s.in_features()
            ));
        }
        match s.weight_count() {
            Some(n) if n <= MAX_LAYER_WEIGHTS => {}
            _ => {
                return Err(format!(
                    "layer {name} shape {} x {} is larger than the runtime's limit of {MAX_LAYER_WEIGHTS} weights",
                    s.out_features(),
                    s.in_features()
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
    for w in specs.windows(2) {
        if w[0].out_features() != w[1].in_features() {
            return Err(format!(
                "layer chain mismatch: layer {} has out_features {} but the next layer {} has in_features {}",
                w[0].name(),
                w[0].out_features(),
                w[1].name(),
                w[1].in_features()
            ));
        }
    }
    let prod = meta
        .input_shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d));
    let first = specs[0];
    if prod != Some(first.in_features()) {
        return Err(format!(
            "layer chain mismatch: input_shape {:?} has {} values but the first layer {} has in_features {}",
            meta.input_shape,
            prod.map_or("too many".to_string(), |p| p.to_string()),
            first.name(),
            first.in_features()
        ));
    }
    let last = specs[specs.len() - 1];
    if last.out_features() != meta.classes {
        return Err(format!(
            "layer chain mismatch: classes is {} but the last layer {} has out_features {}",
            meta.classes,
            last.name(),
            last.out_features()
        ));
    }
    Ok(())
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
        if !a.is_finite() {
            return Err(format!("accuracy {a} is not finite"));
        }
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

/// Validates an in-memory model; returns the densities the masks give (per layer, total).
pub(crate) fn export_model(
    model: &ExportModel,
    file: &str,
) -> Result<(Vec<(String, f64)>, f64), SparseError> {
    let err = |detail: String| SparseError::InvalidModel {
        file: file.to_string(),
        detail,
    };
    let spec_refs: Vec<&LayerSpec> = model.layers.iter().map(|(s, _)| s).collect();
    specs(&spec_refs, &model.meta).map_err(err)?;
    meta_fields(&model.meta).map_err(err)?;
    for (spec, t) in &model.layers {
        let name = spec.name();
        let n = spec.weight_count().unwrap_or(usize::MAX);
        let out = spec.out_features();
        if t.weight.len() != n {
            return Err(err(format!(
                "layer {name} weight has {} values, expected {out} x {} = {n}",
                t.weight.len(),
                spec.in_features()
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
        .map(|(s, t)| (s.name().to_string(), t.kept(), t.mask.len()))
        .collect();
    stated_densities(&model.meta, &actual)
        .map_err(|e| err(format!("{e} (call ExportModel::recompute_densities)")))?;
    Ok(densities(&model.layers))
}
