//! Text contrast of the brand colours (WCAG 2.1 success criterion 1.4.3:
//! at least 4.5:1 for normal text). A municipality's own colours can make
//! its login page unreadable for people with low vision, so check-config
//! says so; it is a warning, not an error, since the organisation decides.

use super::model::Branding;
use super::validate::Checker;

/// The least contrast WCAG 2.1 AA allows for normal-sized text.
pub const MIN_TEXT_CONTRAST: f64 = 4.5;

/// The page's own colours that brand colours meet (html/static/portvakt.css:
/// `--pv-surface` behind the card's text and links, `--pv-text` for text).
const SURFACE: &str = "#ffffff";
const TEXT: &str = "#1b2430";

/// Warn about every place where text would be drawn below 4.5:1.
pub(super) fn check(c: &mut Checker<'_>, b: &Branding) {
    let pairs = [
        (
            "branding.colors.on_primary",
            "text on primary buttons",
            &b.on_primary,
            &b.primary,
        ),
        (
            "branding.colors.primary",
            "links and secondary buttons on the white card",
            &b.primary,
            &SURFACE.to_owned(),
        ),
        (
            "branding.colors.background",
            "page text on the background",
            &TEXT.to_owned(),
            &b.background,
        ),
    ];
    for (key, what, fg, bg) in pairs {
        let (Some(f), Some(g)) = (luminance(fg), luminance(bg)) else {
            continue;
        };
        let r = ratio(f, g);
        if r < MIN_TEXT_CONTRAST {
            c.warn(
                key,
                format!(
                    "{what}: {fg} on {bg} has a contrast of {r:.2}:1; WCAG 2.1 AA asks for at least {MIN_TEXT_CONTRAST}:1"
                ),
            );
        }
    }
}

/// Relative luminance of `#rrggbb` (WCAG 2.1 definition).
fn luminance(hex: &str) -> Option<f64> {
    let hex = hex.strip_prefix('#').filter(|h| h.len() == 6)?;
    let channel = |i: usize| -> Option<f64> {
        let v = f64::from(u8::from_str_radix(hex.get(i..i + 2)?, 16).ok()?) / 255.0;
        Some(if v <= 0.04045 {
            v / 12.92
        } else {
            ((v + 0.055) / 1.055).powf(2.4)
        })
    };
    Some(0.2126 * channel(0)? + 0.7152 * channel(2)? + 0.0722 * channel(4)?)
}

/// Contrast ratio of two luminances, lighter over darker, 1 to 21.
fn ratio(a: f64, b: f64) -> f64 {
    let (hi, lo) = if a > b { (a, b) } else { (b, a) };
    (hi + 0.05) / (lo + 0.05)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contrast(a: &str, b: &str) -> f64 {
        ratio(luminance(a).unwrap(), luminance(b).unwrap())
    }

    #[test]
    fn ratios_match_the_wcag_examples() {
        assert!((contrast("#000000", "#ffffff") - 21.0).abs() < 1e-9);
        assert!((contrast("#ffffff", "#ffffff") - 1.0).abs() < 1e-9);
        // #767676 on white is the well-known lightest grey that passes.
        assert!(contrast("#767676", "#ffffff") >= 4.5);
        assert!(contrast("#777777", "#ffffff") < 4.5);
        // The shipped defaults pass everywhere.
        assert!(contrast("#ffffff", "#1f4e79") >= 4.5);
        assert!(contrast("#1f4e79", SURFACE) >= 4.5);
        assert!(contrast(TEXT, "#f3f5f8") >= 4.5);
        assert_eq!(luminance("#12345"), None);
    }
}
