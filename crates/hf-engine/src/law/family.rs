//! The pruning families whose law is measured ([`Family`]): their names, what their saliency
//! means, and parsing from the command line.

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
