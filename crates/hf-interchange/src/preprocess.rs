//! Input preprocessing: how the raw values of a dataset (u8 pixels or floats) become the values a
//! network sees, shared by the data loader, run configs and every exported file.
//!
//! * [`Normalize`] is the user's `--normalize MEAN,STD` setting (stored in run configs).
//! * [`Preprocessing`] is the full per-channel map `input = (raw · scale − mean) / std` that a
//!   trained network expects, recorded in checkpoints and exports so that a deployer feeding raw
//!   pixels knows what to do.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Shortest decimal of an `f32`, as `f64` (`0.1307f32` → `0.1307`, not `0.13070000708…`), so
/// constants read back to the same `f32` and print as written.
pub fn f32_to_f64(v: f32) -> f64 {
    v.to_string().parse().unwrap_or(v as f64)
}

/// The map from a dataset's raw values to network inputs, per channel `c`:
/// `input = (raw · scale − mean[c]) / std[c]`.
///
/// `scale` is `1/255` for u8 pixel data (so `mean`/`std` are on the 0..1 scale) and `1` for float
/// data. `mean` and `std` hold one value per input channel, or a single value for every channel.
/// For a flat input of `n` values (an `input_shape` that is not `[C, H, W]`), every value is its
/// own channel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Preprocessing {
    /// Factor applied to raw values first (1/255 for u8 pixels, 1 for float data).
    pub scale: f64,
    /// Per-channel mean subtracted after scaling (length 1 or channels).
    pub mean: Vec<f64>,
    /// Per-channel standard deviation divided by (length 1 or channels, all > 0).
    pub std: Vec<f64>,
}

impl Preprocessing {
    /// `scale` of u8 pixel data: 1/255.
    pub const PIXEL_SCALE: f64 = 1.0 / 255.0;

    /// Values used as given: scale 1, mean 0, std 1.
    pub fn identity() -> Self {
        Self {
            scale: 1.0,
            mean: vec![0.0],
            std: vec![1.0],
        }
    }

    /// From `f32` constants (as the data loader holds them), converted through their shortest
    /// decimal so that the recorded numbers read as written.
    pub fn from_f32(scale: f64, mean: &[f32], std: &[f32]) -> Self {
        Self {
            scale,
            mean: mean.iter().map(|&v| f32_to_f64(v)).collect(),
            std: std.iter().map(|&v| f32_to_f64(v)).collect(),
        }
    }

    /// Checks that every number is finite, `scale > 0`, every `std > 0`, and that `mean` and
    /// `std` each hold 1 or `channels` values. The message says what is wrong.
    pub fn validate(&self, channels: usize) -> Result<(), String> {
        if !(self.scale.is_finite() && self.scale > 0.0) {
            return Err(format!(
                "input_scale {} is not a positive finite number",
                self.scale
            ));
        }
        for (what, v) in [("input_mean", &self.mean), ("input_std", &self.std)] {
            if v.len() != 1 && v.len() != channels {
                return Err(format!(
                    "{what} has {} values; expected 1 or {channels} (one per input channel)",
                    v.len()
                ));
            }
            if let Some(x) = v.iter().find(|x| !x.is_finite()) {
                return Err(format!("{what} holds {x}, which is not finite"));
            }
        }
        if let Some(s) = self.std.iter().find(|&&s| s <= 0.0) {
            return Err(format!("input_std holds {s}; every std must be > 0"));
        }
        Ok(())
    }

    /// Per-channel `(a, b)` with `input = raw · a + b`, in `f32`:
    /// `a = 1 / ((1/scale) · std)`, `b = −mean / std`. For u8 pixels this is exactly the
    /// arithmetic of the training batches (`1 / (255 · std)`), so the runtime reproduces them
    /// bit for bit. Missing or invalid entries count as mean 0, std 1.
    pub fn affine(&self, channels: usize) -> Vec<(f32, f32)> {
        let pick = |v: &[f64], c: usize, default: f64| -> f64 {
            match v.len() {
                0 => default,
                1 => v[0],
                _ => v.get(c).copied().unwrap_or(default),
            }
        };
        let inv_scale = if self.scale.is_finite() && self.scale > 0.0 {
            (1.0 / self.scale) as f32
        } else {
            1.0
        };
        (0..channels)
            .map(|c| {
                let mean = pick(&self.mean, c, 0.0) as f32;
                let std = pick(&self.std, c, 1.0) as f32;
                let std = if std.is_finite() && std > 0.0 {
                    std
                } else {
                    1.0
                };
                (1.0 / (inv_scale * std), -mean / std)
            })
            .collect()
    }

    /// Applies the map in place to examples of `example_len` values (CHW order, `channels`
    /// planes of `example_len / channels` values each), back to back.
    pub fn apply(&self, values: &mut [f32], example_len: usize, channels: usize) {
        let channels = channels.max(1);
        let plane = (example_len / channels).max(1);
        let ab = self.affine(channels);
        for example in values.chunks_mut(example_len.max(1)) {
            for (c, chunk) in example.chunks_mut(plane).enumerate() {
                let (a, b) = ab[c.min(channels - 1)];
                for v in chunk {
                    *v = *v * a + b;
                }
            }
        }
    }
}

impl fmt::Display for Preprocessing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |v: &[f64]| {
            v.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        write!(
            f,
            "(x · {} − [{}]) / [{}]",
            self.scale,
            list(&self.mean),
            list(&self.std)
        )
    }
}

/// `--normalize`: the per-channel mean and standard deviation subtracted from and divided into
/// the data after its scale (x/255 for u8 pixels, x for float data).
///
/// Text syntax (`FromStr` / `Display`): `MEAN,STD` for one pair used on every channel, or all
/// means then all standard deviations, `M1,…,Mc,S1,…,Sc`, for `c` channels. Stored in run
/// configs as `normalize = { mean = [...], std = [...] }`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Normalize {
    /// Means, one for all channels or one per channel.
    pub mean: Vec<f64>,
    /// Standard deviations (> 0), as many as `mean`.
    pub std: Vec<f64>,
}

impl Normalize {
    /// Syntax reminder used in error messages and `--help`.
    pub const SYNTAX: &'static str =
        "give MEAN,STD (one pair for all channels) or M1,..,Mc,S1,..,Sc (c means, then c standard deviations)";

    /// Checks that there is at least one pair, as many means as standard deviations, every
    /// value finite and every std > 0.
    pub fn validate(&self) -> Result<(), String> {
        if self.mean.is_empty() || self.mean.len() != self.std.len() {
            return Err(format!(
                "{} means and {} standard deviations: {}",
                self.mean.len(),
                self.std.len(),
                Self::SYNTAX
            ));
        }
        if let Some(x) = self.mean.iter().chain(&self.std).find(|x| !x.is_finite()) {
            return Err(format!("{x} is not a finite number"));
        }
        if let Some(s) = self.std.iter().find(|&&s| s <= 0.0) {
            return Err(format!(
                "standard deviation {s} is not > 0 (inputs are divided by it)"
            ));
        }
        Ok(())
    }

    /// Mean and std per channel for data with `channels` channels (a single pair is repeated).
    /// Fails if the setting has neither 1 nor `channels` pairs.
    pub fn per_channel(&self, channels: usize) -> Result<(Vec<f32>, Vec<f32>), String> {
        self.validate()?;
        let n = self.mean.len();
        if n != 1 && n != channels {
            return Err(format!(
                "{n} mean/std pairs for data with {channels} channels: give 1 pair or {channels}"
            ));
        }
        let at = |v: &[f64], c: usize| v[if n == 1 { 0 } else { c }] as f32;
        Ok((
            (0..channels).map(|c| at(&self.mean, c)).collect(),
            (0..channels).map(|c| at(&self.std, c)).collect(),
        ))
    }
}

impl FromStr for Normalize {
    type Err = String;

    /// Parses `MEAN,STD` or `M1,..,Mc,S1,..,Sc` and validates it.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let values: Vec<f64> = s
            .split(',')
            .map(|t| {
                t.trim()
                    .parse::<f64>()
                    .map_err(|_| format!("'{}' is not a number; {}", t.trim(), Self::SYNTAX))
            })
            .collect::<Result<_, _>>()?;
        if values.len() < 2 || !values.len().is_multiple_of(2) {
            return Err(format!("{} values; {}", values.len(), Self::SYNTAX));
        }
        let half = values.len() / 2;
        let n = Normalize {
            mean: values[..half].to_vec(),
            std: values[half..].to_vec(),
        };
        n.validate()?;
        Ok(n)
    }
}

impl fmt::Display for Normalize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all: Vec<String> = self
            .mean
            .iter()
            .chain(&self.std)
            .map(|v| v.to_string())
            .collect();
        f.write_str(&all.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_pairs_and_per_channel() {
        let n: Normalize = "0.5,0.25".parse().unwrap();
        assert_eq!(n.mean, [0.5]);
        assert_eq!(n.std, [0.25]);
        assert_eq!(n.to_string(), "0.5,0.25");
        assert_eq!(n.per_channel(3).unwrap(), (vec![0.5; 3], vec![0.25; 3]));
        let n: Normalize = " 0.1, 0.2,0.3,1,2,3 ".parse().unwrap();
        assert_eq!(n.mean, [0.1, 0.2, 0.3]);
        assert_eq!(n.std, [1.0, 2.0, 3.0]);
        assert_eq!(n.to_string().parse::<Normalize>().unwrap(), n);
        let e = n.per_channel(1).unwrap_err();
        assert!(
            e.contains("3 mean/std pairs") && e.contains("1 channels"),
            "{e}"
        );
    }

    #[test]
    fn parse_errors_say_the_syntax() {
        for (s, want) in [
            ("0.5", "1 values"),
            ("1,2,3", "3 values"),
            ("a,1", "'a' is not a number"),
            ("0.5,0", "not > 0"),
            ("0.5,-1", "not > 0"),
            ("nan,1", "not a finite"),
            ("0,inf", "not a finite"),
        ] {
            let e = s.parse::<Normalize>().unwrap_err();
            assert!(e.contains(want), "{s}: {e}");
            assert!(!e.contains('\n'));
        }
        let e = "1,2,3".parse::<Normalize>().unwrap_err();
        assert!(e.contains("MEAN,STD"), "{e}");
    }

    #[test]
    fn serde_round_trip() {
        let n: Normalize = "0.5,0.25".parse().unwrap();
        let j = serde_json::to_string(&n).unwrap();
        assert_eq!(j, r#"{"mean":[0.5],"std":[0.25]}"#);
        assert_eq!(serde_json::from_str::<Normalize>(&j).unwrap(), n);
        let p = Preprocessing::from_f32(Preprocessing::PIXEL_SCALE, &[0.1307], &[0.3081]);
        assert_eq!(p.mean, [0.1307]);
        assert_eq!(p.std, [0.3081]);
        let j = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<Preprocessing>(&j).unwrap(), p);
    }

    #[test]
    fn affine_matches_the_loader_arithmetic() {
        let (mean, std) = (0.1307f32, 0.3081f32);
        let p = Preprocessing::from_f32(Preprocessing::PIXEL_SCALE, &[mean], &[std]);
        let ab = p.affine(1);
        assert_eq!(ab[0].0.to_bits(), (1.0f32 / (255.0 * std)).to_bits());
        assert_eq!(ab[0].1.to_bits(), (-mean / std).to_bits());
        // Identity leaves values exactly as given.
        let mut v = vec![1.5f32, -0.0, 3.25e-7];
        Preprocessing::identity().apply(&mut v, 3, 3);
        assert_eq!(v, [1.5, -0.0, 3.25e-7]);
        // Per channel, two examples of 2 channels x 2 values.
        let p = Preprocessing {
            scale: 1.0,
            mean: vec![1.0, 2.0],
            std: vec![2.0, 4.0],
        };
        let mut v = vec![3.0f32, 5.0, 6.0, 10.0, 1.0, 1.0, 2.0, 2.0];
        p.apply(&mut v, 4, 2);
        assert_eq!(v, [1.0, 2.0, 1.0, 2.0, 0.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn validate_preprocessing() {
        let ok = Preprocessing {
            scale: 1.0 / 255.0,
            mean: vec![0.5, 0.4, 0.3],
            std: vec![0.2],
        };
        ok.validate(3).unwrap();
        let e = ok.validate(1).unwrap_err();
        assert!(e.contains("input_mean has 3 values"), "{e}");
        let mut bad = ok.clone();
        bad.std = vec![0.0];
        assert!(bad.validate(3).unwrap_err().contains("> 0"));
        let mut bad = ok.clone();
        bad.mean[1] = f64::NAN;
        assert!(bad.validate(3).unwrap_err().contains("not finite"));
        let mut bad = ok;
        bad.scale = 0.0;
        assert!(bad.validate(3).unwrap_err().contains("input_scale"));
    }
}
