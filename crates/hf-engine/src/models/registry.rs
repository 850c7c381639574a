//! The model registry: every built-in architecture once, in [`MODELS`] — its name, the aliases
//! it is also known by, the input shape `hyperflux models` lists it with, a one-line description
//! and its constructor. Listing (`hyperflux models`), name canonicalisation ([`canonical`]) and
//! building by name ([`build`]) all read that one table.

use super::{lenet5, resnet, vgg, Body, Builder};
use crate::init::Init;
use crate::mlp::Mlp;
use crate::network::Network;
use crate::EngineError;
use tch::Device;

/// Builds a model for examples of shape `input` (C, H, W) and `classes` classes, initial values
/// from `init` (masks uniform in `init.mask`), tensors on `device`.
pub type Constructor = fn([i64; 3], i64, Init, Device) -> Result<Box<dyn Network>, EngineError>;

/// One built-in model.
#[derive(Debug, Clone, Copy)]
pub struct ModelEntry {
    /// Canonical name (the architecture name checkpoints record, e.g. `lenet300`).
    pub name: &'static str,
    /// Other names accepted for it (e.g. `lenet-300-100`).
    pub aliases: &'static [&'static str],
    /// The input shape (C, H, W) `hyperflux models` builds and lists it with.
    pub input: [i64; 3],
    /// One line on what it is.
    pub description: &'static str,
    /// Its constructor.
    pub build: Constructor,
}

impl ModelEntry {
    /// Whether `name` is this model's name or one of its aliases.
    pub fn is_called(&self, name: &str) -> bool {
        self.name == name || self.aliases.contains(&name)
    }
}

/// Every built-in model, in the order `hyperflux models` lists them.
pub const MODELS: &[ModelEntry] = &[
    ModelEntry {
        name: "lenet300",
        aliases: &["lenet-300-100"],
        input: [1, 28, 28],
        description: "LeNet-300-100: fc 300, fc 100, linear (biases), on 28x28 grey images",
        build: build_lenet300,
    },
    ModelEntry {
        name: "lenet5",
        aliases: &["lenet-5"],
        input: [1, 28, 28],
        description: "LeNet-5: conv 6@5x5, pool, conv 16@5x5, pool, fc 120, 84 (biases, no BN)",
        build: build_lenet5,
    },
    ModelEntry {
        name: "vgg-narrow",
        aliases: &["vgg_narrow", "vggnarrow"],
        input: [1, 28, 28],
        description: "narrow VGG: conv3x3+BN [16,M,32,M,64,64,M,128,128], avg-pool, linear 128",
        build: build_vgg_narrow,
    },
    ModelEntry {
        name: "resnet20",
        aliases: &["resnet-20"],
        input: [3, 32, 32],
        description:
            "ResNet-20 (CIFAR): basic blocks [3,3,3], widths 16/32/64, projection shortcuts",
        build: build_resnet20,
    },
    ModelEntry {
        name: "vgg19",
        aliases: &["vgg-19"],
        input: [3, 32, 32],
        description: "VGG-19 (CIFAR): 16 conv3x3+BN, 4 max-pools, avg-pool, linear 512",
        build: build_vgg19,
    },
    ModelEntry {
        name: "resnet50",
        aliases: &["resnet-50"],
        input: [3, 32, 32],
        description: "ResNet-50 (CIFAR): 3x3 stem, bottlenecks [3,4,6,3] x4, projection shortcuts",
        build: build_resnet50,
    },
];

/// The model a name or alias stands for.
pub fn find(name: &str) -> Option<&'static ModelEntry> {
    MODELS.iter().find(|m| m.is_called(name))
}

/// The canonical name of a model name or alias.
pub fn canonical(name: &str) -> Option<&'static str> {
    find(name).map(|m| m.name)
}

/// Builds a built-in model by name or alias for inputs of shape `input` (C, H, W) and `classes`
/// classes, initial values from `init` (the same `init` gives the same network). Fails with one
/// line when the name is unknown or the model does not take the data shape.
pub fn build(
    arch: &str,
    input: [i64; 3],
    classes: i64,
    init: Init,
    device: Device,
) -> Result<Box<dyn Network>, EngineError> {
    let model = find(arch).ok_or_else(|| {
        EngineError::Model(format!(
            "unknown model {arch:?}: run `hyperflux models` for the list"
        ))
    })?;
    (model.build)(input, classes, init, device)
}

fn build_lenet300(
    _input: [i64; 3],
    classes: i64,
    init: Init,
    device: Device,
) -> Result<Box<dyn Network>, EngineError> {
    // LeNet-300-100 is defined on 28×28 grey images; other inputs are refused by
    // `trainer::check_fits` rather than silently widening the first layer.
    Ok(Box::new(Mlp::new(
        "lenet300",
        [1, 28, 28],
        &[300, 100],
        classes,
        init,
        device,
    )))
}

/// A convolutional model named `name`: checks the data shape, then creates the layers and the
/// wiring with `body`.
fn conv_net(
    name: &str,
    input: [i64; 3],
    classes: i64,
    init: Init,
    device: Device,
    body: impl FnOnce(&mut Builder) -> Result<Box<dyn Body>, EngineError>,
) -> Result<Box<dyn Network>, EngineError> {
    if input.iter().any(|&d| d <= 0) || classes <= 0 {
        return Err(EngineError::Model(format!(
            "model {name}: input {input:?} with {classes} classes is not a valid data shape"
        )));
    }
    let mut b = Builder::new(device, init);
    let body = body(&mut b)?;
    Ok(Box::new(b.finish(name, input, classes, body)))
}

fn build_lenet5(
    input: [i64; 3],
    classes: i64,
    init: Init,
    device: Device,
) -> Result<Box<dyn Network>, EngineError> {
    conv_net("lenet5", input, classes, init, device, |b| {
        Ok(Box::new(lenet5::LeNet5::new(b, input, classes)?))
    })
}

fn build_vgg_narrow(
    input: [i64; 3],
    classes: i64,
    init: Init,
    device: Device,
) -> Result<Box<dyn Network>, EngineError> {
    let name = "vgg-narrow";
    conv_net(name, input, classes, init, device, |b| {
        Ok(Box::new(vgg::Vgg::new(
            b,
            vgg::VGG_NARROW,
            input,
            classes,
            name,
        )?))
    })
}

fn build_vgg19(
    input: [i64; 3],
    classes: i64,
    init: Init,
    device: Device,
) -> Result<Box<dyn Network>, EngineError> {
    let name = "vgg19";
    conv_net(name, input, classes, init, device, |b| {
        Ok(Box::new(vgg::Vgg::new(
            b,
            vgg::VGG19,
            input,
            classes,
            name,
        )?))
    })
}

fn build_resnet20(
    input: [i64; 3],
    classes: i64,
    init: Init,
    device: Device,
) -> Result<Box<dyn Network>, EngineError> {
    conv_net("resnet20", input, classes, init, device, |b| {
        Ok(Box::new(resnet::ResNet::new(
            b,
            &resnet::RESNET20,
            input,
            classes,
        )?))
    })
}

fn build_resnet50(
    input: [i64; 3],
    classes: i64,
    init: Init,
    device: Device,
) -> Result<Box<dyn Network>, EngineError> {
    conv_net("resnet50", input, classes, init, device, |b| {
        Ok(Box::new(resnet::ResNet::new(
            b,
            &resnet::RESNET50,
            input,
            classes,
        )?))
    })
}
