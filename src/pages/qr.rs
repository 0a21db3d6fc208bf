//! QR codes rendered on the server as PNG data URIs: no JavaScript, and the
//! page's CSP (`img-src 'self' data:`) allows them.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use qrcode::{Color, EcLevel, QrCode};

/// Pixels per QR module: big enough for a phone camera at arm's length.
const SCALE: usize = 6;
/// Light modules around the code, as the QR standard asks.
const QUIET: usize = 4;

/// Why a QR code could not be made.
#[derive(Debug, thiserror::Error)]
pub enum QrError {
    /// The text does not fit in a QR code.
    #[error("cannot encode QR code: {0}")]
    Encode(#[from] qrcode::types::QrError),
    /// PNG encoding failed.
    #[error("cannot write PNG: {0}")]
    Png(#[from] png::EncodingError),
}

/// `data:image/png;base64,…` of a QR code holding `text`.
pub fn png_data_uri(text: &str) -> Result<String, QrError> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)?;
    let modules = code.width();
    let colors = code.to_colors();
    let side = (modules + 2 * QUIET) * SCALE;
    let mut pixels = vec![255u8; side * side];
    for (i, c) in colors.iter().enumerate() {
        if *c != Color::Dark {
            continue;
        }
        let (mx, my) = (i % modules + QUIET, i / modules + QUIET);
        for y in my * SCALE..(my + 1) * SCALE {
            pixels[y * side + mx * SCALE..y * side + (mx + 1) * SCALE].fill(0);
        }
    }
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, side as u32, side as u32);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header()?;
        writer.write_image_data(&pixels)?;
    }
    Ok(format!("data:image/png;base64,{}", STANDARD.encode(out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makes_a_png_data_uri() {
        let uri =
            png_data_uri("otpauth://totp/Test:alice?secret=JBSWY3DPEHPK3PXP&issuer=Test").unwrap();
        let png = STANDARD
            .decode(uri.strip_prefix("data:image/png;base64,").unwrap())
            .unwrap();
        assert_eq!(&png[1..4], b"PNG");
    }
}
