//! The pruning families whose law is measured ([`Family`]) and everything that depends on the
//! family alone: names, descriptions, what the saliency means, the files a measurement writes,
//! the laws derived from measured flux ([`FluxLaw`]), and parsing from the command line.

use super::LawSample;
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// A pruning family whose law is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    /// Hyperflux (L0) under a pressure ladder `λ = 2^k`.
    L0,
    /// Global iterative magnitude pruning with fine-tuning.
    Magnitude,
    /// Global iterative first-order Taylor pruning with fine-tuning.
    Taylor,
    /// One-shot global magnitude pruning of the dense net to each density (no fine-tuning).
    Oneshot,
}

impl Family {
    /// Every family, in the order the CLI lists them.
    pub const ALL: [Family; 4] = [
        Family::L0,
        Family::Magnitude,
        Family::Taylor,
        Family::Oneshot,
    ];

    /// Lower-case name (file stems, settings files).
    pub fn name(&self) -> &'static str {
        match self {
            Family::L0 => "l0",
            Family::Magnitude => "magnitude",
            Family::Taylor => "taylor",
            Family::Oneshot => "oneshot",
        }
    }

    /// What the family does, in a few words.
    pub fn description(&self) -> &'static str {
        match self {
            Family::L0 => "Hyperflux pressure ladder",
            Family::Magnitude => "iterative global magnitude pruning",
            Family::Taylor => "iterative first-order Taylor pruning",
            Family::Oneshot => {
                "magnitude control: prune the dense net directly to each density, no fine-tuning"
            }
        }
    }

    /// The help of a `--family` flag: every family with its description, in [`Family::ALL`]
    /// order.
    pub fn choices_help() -> String {
        let items: Vec<String> = Family::ALL
            .iter()
            .map(|f| format!("{} ({})", f.name(), f.description()))
            .collect();
        let (last, rest) = items.split_last().expect("at least one family");
        format!("Pruning family: {} or {last}", rest.join(", "))
    }

    /// File name of the family's law CSV in the output directory (`l0.csv`, …).
    pub fn csv_file(&self) -> String {
        format!("{}.csv", self.name())
    }

    /// Path stem (in the output directory) of the family's law plot (`l0_law`, …).
    pub fn plot_stem(&self) -> String {
        format!("{}_law", self.name())
    }

    /// The laws derived from this family's points with a measured flux statistic as saliency
    /// (written next to the family's own law CSV). L0 only: the law with measured flux instead
    /// of λ, from the survivors' low flux quantile (the hypothesis' minimum saliency, made
    /// robust) and from their low RMS-flux quantile.
    pub fn flux_laws(&self) -> &'static [FluxLaw] {
        match self {
            Family::L0 => &[
                FluxLaw {
                    file: "l0_flux.csv",
                    column: "QuantileFlux",
                },
                FluxLaw {
                    file: "l0_rms_flux.csv",
                    column: "QuantileRmsFlux",
                },
            ],
            Family::Magnitude | Family::Taylor | Family::Oneshot => &[],
        }
    }

    /// What the Saliency column of this family means.
    pub fn saliency_meaning(&self) -> &'static str {
        match self {
            Family::L0 => "pressure λ of the block",
            Family::Magnitude | Family::Oneshot => "largest magnitude |w| removed",
            Family::Taylor => "largest Taylor score |w·∂L/∂w| removed",
        }
    }
}

impl FromStr for Family {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "l0" | "hyperflux" => Ok(Family::L0),
            "magnitude" | "imp" => Ok(Family::Magnitude),
            "taylor" => Ok(Family::Taylor),
            "oneshot" | "one-shot" => Ok(Family::Oneshot),
            other => Err(format!(
                "unknown family {other:?}: use l0, magnitude, taylor or oneshot"
            )),
        }
    }
}

/// A law derived from a family's points: the measured flux statistic in the extras column
/// `column` becomes the saliency, written as the law CSV `file`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FluxLaw {
    /// File name of the derived law CSV in the output directory.
    pub file: &'static str,
    /// The extras column taken as saliency.
    pub column: &'static str,
}

impl FluxLaw {
    /// The points re-expressed with column [`FluxLaw::column`] as saliency, on the rows where it
    /// is positive; the original saliency (the pressure) is kept as the first extras column,
    /// `Pressure`.
    pub fn points(&self, samples: &[LawSample]) -> Vec<LawSample> {
        samples
            .iter()
            .filter_map(|p| {
                let q = p
                    .extras
                    .iter()
                    .find(|(k, _)| k == self.column)
                    .map(|(_, v)| *v)?;
                (q > 0.0).then(|| {
                    let mut extras = vec![("Pressure".to_string(), p.saliency)];
                    extras.extend(p.extras.iter().filter(|(k, _)| k != "Pressure").cloned());
                    LawSample {
                        epoch: p.epoch,
                        saliency: q,
                        remaining: p.remaining,
                        accuracy: p.accuracy,
                        extras,
                    }
                })
            })
            .collect()
    }
}
