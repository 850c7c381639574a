//! Dataset identities and their fixed properties.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The datasets hyperflux can train on.
///
/// Serialised (and parsed) as `"mnist"`, `"fashion-mnist"`, `"cifar10"`, `"cifar100"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    /// Handwritten digits, 1x28x28, 10 classes (IDX files).
    Mnist,
    /// Zalando clothing images, 1x28x28, 10 classes (IDX files).
    #[serde(alias = "fashion", alias = "fashion_mnist")]
    FashionMnist,
    /// Natural images, 3x32x32, 10 classes (CIFAR binary version).
    Cifar10,
    /// Natural images, 3x32x32, 100 fine classes (CIFAR binary version).
    Cifar100,
}

impl DatasetKind {
    /// Every kind, in a stable order (handy for help texts and tests).
    pub const ALL: [DatasetKind; 4] = [
        DatasetKind::Mnist,
        DatasetKind::FashionMnist,
        DatasetKind::Cifar10,
        DatasetKind::Cifar100,
    ];

    /// Canonical lowercase name, as accepted by [`FromStr`] and used by serde.
    pub fn name(&self) -> &'static str {
        match self {
            DatasetKind::Mnist => "mnist",
            DatasetKind::FashionMnist => "fashion-mnist",
            DatasetKind::Cifar10 => "cifar10",
            DatasetKind::Cifar100 => "cifar100",
        }
    }

    /// Human-readable name for messages ("MNIST", "CIFAR-10", ...).
    pub fn title(&self) -> &'static str {
        match self {
            DatasetKind::Mnist => "MNIST",
            DatasetKind::FashionMnist => "Fashion-MNIST",
            DatasetKind::Cifar10 => "CIFAR-10",
            DatasetKind::Cifar100 => "CIFAR-100",
        }
    }

    /// Number of classes (labels are `0..classes()`).
    pub fn classes(&self) -> usize {
        match self {
            DatasetKind::Mnist | DatasetKind::FashionMnist | DatasetKind::Cifar10 => 10,
            DatasetKind::Cifar100 => 100,
        }
    }

    /// Image shape as `(channels, height, width)`.
    pub fn shape(&self) -> (usize, usize, usize) {
        match self {
            DatasetKind::Mnist | DatasetKind::FashionMnist => (1, 28, 28),
            DatasetKind::Cifar10 | DatasetKind::Cifar100 => (3, 32, 32),
        }
    }

    /// Where the data lives unless the user passes `--data-dir`: `data/mnist`,
    /// `/usr/share/datasets/fashion-mnist` (Debian package `dataset-fashion-mnist`),
    /// `data/cifar-10-batches-bin`, `data/cifar-100-binary` (relative paths are relative to
    /// the current directory).
    pub fn default_dir(&self) -> PathBuf {
        PathBuf::from(match self {
            DatasetKind::Mnist => "data/mnist",
            DatasetKind::FashionMnist => "/usr/share/datasets/fashion-mnist",
            DatasetKind::Cifar10 => "data/cifar-10-batches-bin",
            DatasetKind::Cifar100 => "data/cifar-100-binary",
        })
    }

    /// Per-channel normalisation mean on the 0..1 scale (the usual published constants).
    pub fn mean(&self) -> &'static [f32] {
        match self {
            DatasetKind::Mnist => &[0.1307],
            DatasetKind::FashionMnist => &[0.2860],
            DatasetKind::Cifar10 => &[0.4914, 0.4822, 0.4465],
            DatasetKind::Cifar100 => &[0.5071, 0.4865, 0.4409],
        }
    }

    /// Per-channel normalisation standard deviation on the 0..1 scale.
    pub fn std(&self) -> &'static [f32] {
        match self {
            DatasetKind::Mnist => &[0.3081],
            DatasetKind::FashionMnist => &[0.3530],
            DatasetKind::Cifar10 => &[0.247, 0.243, 0.261],
            DatasetKind::Cifar100 => &[0.2673, 0.2564, 0.2762],
        }
    }

    /// Number of `f32`/`u8` values per image (`C*H*W`).
    pub fn image_len(&self) -> usize {
        let (c, h, w) = self.shape();
        c * h * w
    }
}

impl fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DatasetKind {
    type Err = String;

    /// Parses `mnist`, `fashion-mnist` (also `fashion`, `fashion_mnist`), `cifar10`,
    /// `cifar100`, case-insensitively (`cifar-10` / `cifar_10` are accepted too).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = s.trim().to_ascii_lowercase();
        match norm.as_str() {
            "mnist" => Ok(DatasetKind::Mnist),
            "fashion-mnist" | "fashion" | "fashion_mnist" | "fashionmnist" => {
                Ok(DatasetKind::FashionMnist)
            }
            "cifar10" | "cifar-10" | "cifar_10" => Ok(DatasetKind::Cifar10),
            "cifar100" | "cifar-100" | "cifar_100" => Ok(DatasetKind::Cifar100),
            _ => Err(format!(
                "unknown dataset '{s}': expected one of mnist, fashion-mnist, cifar10, cifar100"
            )),
        }
    }
}

/// Which half of a dataset to load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// The training set (60000 images for MNIST, 50000 for CIFAR).
    Train,
    /// The held-out test set (10000 images).
    Test,
}

impl Split {
    /// `"train"` or `"test"`.
    pub fn name(&self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_names_and_aliases() {
        for k in DatasetKind::ALL {
            assert_eq!(k.name().parse::<DatasetKind>().unwrap(), k);
        }
        assert_eq!(
            "fashion".parse::<DatasetKind>().unwrap(),
            DatasetKind::FashionMnist
        );
        assert_eq!(
            "fashion_mnist".parse::<DatasetKind>().unwrap(),
            DatasetKind::FashionMnist
        );
        assert_eq!(
            "CIFAR10".parse::<DatasetKind>().unwrap(),
            DatasetKind::Cifar10
        );
        let err = "imagenet".parse::<DatasetKind>().unwrap_err();
        assert!(err.contains("imagenet"), "{err}");
        for name in ["mnist", "fashion-mnist", "cifar10", "cifar100"] {
            assert!(err.contains(name), "{err}");
        }
    }

    #[test]
    fn serde_names() {
        let names: Vec<String> = DatasetKind::ALL
            .iter()
            .map(|k| serde_json::to_string(k).unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "\"mnist\"",
                "\"fashion-mnist\"",
                "\"cifar10\"",
                "\"cifar100\""
            ]
        );
        for k in DatasetKind::ALL {
            let back: DatasetKind = serde_json::from_str(&format!("\"{}\"", k.name())).unwrap();
            assert_eq!(back, k);
        }
        let alias: DatasetKind = serde_json::from_str("\"fashion\"").unwrap();
        assert_eq!(alias, DatasetKind::FashionMnist);
        assert_eq!(serde_json::to_string(&Split::Test).unwrap(), "\"test\"");
    }

    #[test]
    fn properties_are_consistent() {
        for k in DatasetKind::ALL {
            let (c, _, _) = k.shape();
            assert_eq!(k.mean().len(), c);
            assert_eq!(k.std().len(), c);
        }
        assert_eq!(DatasetKind::Cifar100.classes(), 100);
        assert_eq!(DatasetKind::Mnist.shape(), (1, 28, 28));
        assert_eq!(DatasetKind::Cifar10.image_len(), 3072);
        assert_eq!(
            DatasetKind::FashionMnist.default_dir(),
            PathBuf::from("/usr/share/datasets/fashion-mnist")
        );
        assert_eq!(
            DatasetKind::Mnist.default_dir(),
            PathBuf::from("data/mnist")
        );
    }
}
