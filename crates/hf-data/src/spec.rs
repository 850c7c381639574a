//! Which dataset a run uses (a built-in one or a directory of `.npy` files) and how to load it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use hf_interchange::preprocess::Normalize;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::dataset::Dataset;
use crate::npy::{self, RawSplit, MAX_CLASSES};
use crate::{DataError, DatasetKind, Split};

/// A dataset as a run names it: one of the built-in datasets, or `npy:DIR`, a directory holding
/// `train_x.npy`, `train_y.npy`, `test_x.npy` and `test_y.npy`.
///
/// Written and parsed (also by serde) as the built-in names (`"mnist"`, `"fashion-mnist"`,
/// `"cifar10"`, `"cifar100"`) or as `"npy:DIR"`, so checkpoints that store the dataset as a
/// string read back unchanged.
///
/// npy data: `x` is float32 (float64 is converted), or uint8, of shape `N×C×H×W`, or `N×D`
/// (read as `D×1×1` per example); `y` holds integer class labels (any integer dtype) of shape
/// `(N,)`. Both splits must have the same example shape and dtype.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum DatasetSpec {
    /// A built-in dataset, read from its standard directory unless another one is given.
    Builtin(DatasetKind),
    /// `npy:DIR`: the four `.npy` files in DIR.
    Npy(PathBuf),
}

/// How to load a [`DatasetSpec`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadOptions {
    /// Read this directory instead of the dataset's own (`--data-dir`).
    pub data_dir: Option<PathBuf>,
    /// Normalisation replacing the dataset's default (published constants for the built-in
    /// datasets; mean 0, std 1 for npy data, i.e. floats as given and bytes as x/255).
    pub normalize: Option<Normalize>,
    /// Number of classes of the model the data is for (e.g. an imported network's outputs):
    /// npy labels must be below it. Without it an npy dataset has `max label + 1` classes (over
    /// both splits when loaded with [`DatasetSpec::load_splits`]). Built-in datasets always have
    /// their own number of classes.
    pub classes: Option<usize>,
}

impl DatasetSpec {
    /// The built-in kind, if this is a built-in dataset.
    pub fn kind(&self) -> Option<DatasetKind> {
        match self {
            DatasetSpec::Builtin(k) => Some(*k),
            DatasetSpec::Npy(_) => None,
        }
    }

    /// The directory the files are read from: `data_dir` if given, else the built-in
    /// dataset's standard place, or the npy directory.
    pub fn dir(&self, data_dir: Option<&Path>) -> PathBuf {
        match (data_dir, self) {
            (Some(d), _) => d.to_path_buf(),
            (None, DatasetSpec::Builtin(k)) => k.default_dir(),
            (None, DatasetSpec::Npy(d)) => d.clone(),
        }
    }

    /// Loads one split. For npy data the classes are `opts.classes`, or `max label + 1` of
    /// this split alone (use [`DatasetSpec::load_splits`] for a training run).
    pub fn load(&self, split: Split, opts: &LoadOptions) -> Result<Dataset, DataError> {
        let dir = self.dir(opts.data_dir.as_deref());
        let ds = match self {
            DatasetSpec::Builtin(k) => crate::load(*k, &dir, split)?,
            DatasetSpec::Npy(_) => {
                let raw = npy::read_split(&dir, split)?;
                let classes = classes_of(&[&raw], opts.classes)?;
                npy_dataset(self.with_dir(dir), raw, classes, opts.classes.is_some())?
            }
        };
        normalized(ds, opts)
    }

    /// Loads the training and the test split, checking that they agree (same example shape and
    /// dtype). For npy data the classes are `opts.classes`, or `max label + 1` over both splits.
    pub fn load_splits(&self, opts: &LoadOptions) -> Result<(Dataset, Dataset), DataError> {
        let dir = self.dir(opts.data_dir.as_deref());
        let (train, test) = match self {
            DatasetSpec::Builtin(k) => (
                crate::load(*k, &dir, Split::Train)?,
                crate::load(*k, &dir, Split::Test)?,
            ),
            DatasetSpec::Npy(_) => {
                let train = npy::read_split(&dir, Split::Train)?;
                let test = npy::read_split(&dir, Split::Test)?;
                let describe = |r: &RawSplit| format!("{:?} ({})", r.shape, r.pixels.dtype());
                if train.shape != test.shape || train.pixels.dtype() != test.pixels.dtype() {
                    return Err(DataError::SplitMismatch {
                        train: describe(&train),
                        train_path: train.x_path,
                        test: describe(&test),
                        test_path: test.x_path,
                    });
                }
                let classes = classes_of(&[&train, &test], opts.classes)?;
                let from_model = opts.classes.is_some();
                let spec = self.with_dir(dir);
                (
                    npy_dataset(spec.clone(), train, classes, from_model)?,
                    npy_dataset(spec, test, classes, from_model)?,
                )
            }
        };
        Ok((normalized(train, opts)?, normalized(test, opts)?))
    }

    /// The same dataset read from `dir` (npy: the directory in the name).
    fn with_dir(&self, dir: PathBuf) -> DatasetSpec {
        match self {
            DatasetSpec::Builtin(k) => DatasetSpec::Builtin(*k),
            DatasetSpec::Npy(_) => DatasetSpec::Npy(dir),
        }
    }
}

/// The number of classes: given, or max label + 1 over `splits` (negative labels were
/// refused when reading).
fn classes_of(splits: &[&RawSplit], given: Option<usize>) -> Result<usize, DataError> {
    if let Some(k) = given {
        return Ok(k);
    }
    let mut best: Option<(i64, &RawSplit, usize)> = None;
    for s in splits {
        if let Some((i, &m)) = s.labels.iter().enumerate().max_by_key(|(_, &l)| l) {
            if best.is_none_or(|(b, _, _)| m > b) {
                best = Some((m, s, i));
            }
        }
    }
    let Some((max, split, index)) = best else {
        return Ok(0);
    };
    if max as u64 >= MAX_CLASSES as u64 {
        return Err(DataError::BadLabel {
            path: split.y_path.clone(),
            index,
            label: max.to_string(),
            problem: format!(
                "is too large (more than {MAX_CLASSES} classes are not supported); labels must be class indices 0..K-1"
            ),
        });
    }
    Ok(max as usize + 1)
}

fn npy_dataset(
    source: DatasetSpec,
    raw: RawSplit,
    classes: usize,
    from_model: bool,
) -> Result<Dataset, DataError> {
    let labels = npy::check_labels(&raw, classes, from_model)?;
    let (channels, height, width) = raw.shape;
    Ok(Dataset {
        source,
        images: raw.pixels,
        labels,
        channels,
        height,
        width,
        classes,
        mean: vec![0.0; channels],
        std: vec![1.0; channels],
    })
}

fn normalized(ds: Dataset, opts: &LoadOptions) -> Result<Dataset, DataError> {
    match &opts.normalize {
        Some(n) => ds.with_normalize(n),
        None => Ok(ds),
    }
}

impl From<DatasetKind> for DatasetSpec {
    fn from(k: DatasetKind) -> Self {
        DatasetSpec::Builtin(k)
    }
}

impl fmt::Display for DatasetSpec {
    /// `mnist`, …, or `npy:DIR` (a non-UTF-8 directory is shown lossily).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatasetSpec::Builtin(k) => f.write_str(k.name()),
            DatasetSpec::Npy(d) => write!(f, "npy:{}", d.display()),
        }
    }
}

impl FromStr for DatasetSpec {
    type Err = String;

    /// Parses a built-in name (see [`DatasetKind`]'s `FromStr`) or `npy:DIR` (DIR as given).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim_start();
        if t.len() >= 4 && t[..4].eq_ignore_ascii_case("npy:") {
            let dir = &t[4..];
            if dir.trim().is_empty() {
                return Err(format!(
                    "dataset '{s}' names no directory: use npy:DIR, DIR holding train_x.npy, train_y.npy, test_x.npy, test_y.npy"
                ));
            }
            return Ok(DatasetSpec::Npy(PathBuf::from(dir)));
        }
        if t.trim().eq_ignore_ascii_case("npy") {
            return Err(
                "dataset 'npy' needs its directory: use npy:DIR, DIR holding train_x.npy, train_y.npy, test_x.npy, test_y.npy"
                    .into(),
            );
        }
        s.parse::<DatasetKind>()
            .map(DatasetSpec::Builtin)
            .map_err(|e| format!("{e}, or npy:DIR"))
    }
}

impl Serialize for DatasetSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DatasetSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in DatasetKind::ALL {
            let s = DatasetSpec::from(k);
            assert_eq!(s.to_string(), k.name());
            assert_eq!(s.to_string().parse::<DatasetSpec>().unwrap(), s);
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                serde_json::to_string(&k).unwrap()
            );
        }
        let s: DatasetSpec = "npy:/data/my set".parse().unwrap();
        assert_eq!(s, DatasetSpec::Npy("/data/my set".into()));
        assert_eq!(s.to_string(), "npy:/data/my set");
        let j = serde_json::to_string(&s).unwrap();
        assert_eq!(j, "\"npy:/data/my set\"");
        assert_eq!(serde_json::from_str::<DatasetSpec>(&j).unwrap(), s);
        assert_eq!(
            "NPY:rel/dir".parse::<DatasetSpec>().unwrap(),
            DatasetSpec::Npy("rel/dir".into())
        );
        assert_eq!(
            "fashion".parse::<DatasetSpec>().unwrap(),
            DatasetSpec::Builtin(DatasetKind::FashionMnist)
        );
        for bad in ["npy", "npy:", "npy:  ", "imagenet"] {
            let e = bad.parse::<DatasetSpec>().unwrap_err();
            assert!(e.contains("npy:DIR"), "{bad}: {e}");
        }
    }

    #[test]
    fn directories() {
        let m = DatasetSpec::Builtin(DatasetKind::Mnist);
        assert_eq!(m.dir(None), PathBuf::from("data/mnist"));
        assert_eq!(m.dir(Some(Path::new("x"))), PathBuf::from("x"));
        let n = DatasetSpec::Npy("a/b".into());
        assert_eq!(n.dir(None), PathBuf::from("a/b"));
        assert_eq!(n.dir(Some(Path::new("c"))), PathBuf::from("c"));
        assert_eq!(n.kind(), None);
        assert_eq!(m.kind(), Some(DatasetKind::Mnist));
    }
}
