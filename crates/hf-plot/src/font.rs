//! The embedded font: DejaVu Sans, registered once per process as `sans-serif`, so charts need
//! no system fonts.

use std::sync::OnceLock;

use plotters::style::{register_font, FontStyle};

/// The embedded font (DejaVu Sans 2.37, Bitstream Vera licence), registered as `sans-serif`.
const FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Registers the embedded font once per process; returns the loader's complaint on failure.
pub(crate) fn ensure_font() -> Result<(), String> {
    static FONT: OnceLock<Result<(), String>> = OnceLock::new();
    FONT.get_or_init(|| {
        register_font("sans-serif", FontStyle::Normal, FONT_BYTES)
            .map_err(|_| "DejaVuSans.ttf is not a valid TrueType font".to_string())
    })
    .clone()
}
