//! A user's picture of one digit, made to look like an MNIST image.
//!
//! MNIST's digits were size-normalised to fit a 20x20 box, keeping their aspect ratio, and
//! centred by centre of mass in a 28x28 field, white ink on black. [`to_mnist`] does the same
//! to any photo or scan, so the network sees what it was trained on.

use std::path::Path;

use image::{DynamicImage, GrayImage, ImageReader, Limits, imageops};
use ndarray::Array2;

use crate::data::mnist::SIDE;
use crate::{Error, Result};

/// The largest picture accepted, in pixels on a side: bounds the memory decoding may take
/// (a 8192 x 8192 RGBA image is 256 MiB).
pub const MAX_SIDE: u32 = 8192;
/// The side of the box the digit is scaled to fit.
const BOX: u32 = 20;
/// A pixel at least this bright (after inverting a light background) is ink.
const INK: u8 = 64;

/// Decodes a PNG, JPEG or PNM file, refusing pictures over [`MAX_SIDE`] on a side.
///
/// # Errors
/// [`Error::Io`] when the file cannot be read, [`Error::Image`] when it cannot be decoded or
/// is too large.
pub fn load_image(path: impl AsRef<Path>) -> Result<DynamicImage> {
    let path = path.as_ref();
    let bad = |reason: String| Error::Image {
        source_name: path.display().to_string(),
        reason,
    };
    let mut reader = ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .map_err(|source| Error::Io {
            path: path.into(),
            source,
        })?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    reader.limits(limits);
    reader.decode().map_err(|e| bad(e.to_string()))
}

/// The digit in `image` as MNIST would have it: `[28, 28]`, white ink (255) on black (0).
///
/// Grayscale (a transparent pixel counts as white paper), inverted when the border is lighter
/// than mid-grey, stretched so that the paper is black and the strongest stroke white, cropped
/// to the ink, scaled so that its longer side is 20 pixels, and placed
/// so that its centre of mass is at the centre of the 28x28 field.
///
/// ```
/// use image::{DynamicImage, GrayImage, Luma};
/// // a black bar on white paper, 100 x 60 pixels
/// let paper = GrayImage::from_fn(100, 60, |x, y| Luma([if (40..50).contains(&x) && (10..50).contains(&y) { 0 } else { 255 }]));
/// let digit = lenet5::digit::to_mnist(&DynamicImage::ImageLuma8(paper), "bar")?;
/// assert_eq!(digit.dim(), (28, 28));
/// assert_eq!(digit[[14, 14]], 255); // ink, centred
/// assert_eq!(digit[[0, 0]], 0);     // background
/// # Ok::<(), lenet5::Error>(())
/// ```
///
/// # Errors
/// [`Error::Image`] naming `source_name` when the image is empty or has no ink.
pub fn to_mnist(image: &DynamicImage, source_name: &str) -> Result<Array2<u8>> {
    let bad = |reason: &str| Error::Image {
        source_name: source_name.into(),
        reason: reason.into(),
    };
    if image.width() == 0 || image.height() == 0 {
        return Err(bad("the image is empty"));
    }
    let gray = on_white_paper(image);
    let (w, h) = gray.dimensions();
    let border = gray
        .enumerate_pixels()
        .filter(|(x, y, _)| *x == 0 || *y == 0 || *x == w - 1 || *y == h - 1);
    let (sum, count) = border.fold((0u64, 0u64), |(s, n), (_, _, p)| {
        (s + u64::from(p[0]), n + 1)
    });
    let light = sum > 128 * count;
    // ink is what differs from the paper: invert a light background, then stretch the range
    // from the paper's level to the darkest stroke onto 0..=255 (grey paper becomes black)
    let ink_level = |p: u8| if light { 255 - p } else { p };
    let paper = ink_level((sum / count.max(1)) as u8);
    let darkest = gray.pixels().map(|p| ink_level(p[0])).max().unwrap_or(0);
    if darkest <= paper {
        return Err(bad("no ink found: the image is blank"));
    }
    let range = f32::from(darkest - paper);
    let ink = GrayImage::from_fn(w, h, |x, y| {
        let above_paper = f32::from(ink_level(gray.get_pixel(x, y)[0]).saturating_sub(paper));
        image::Luma([(above_paper * 255.0 / range).round() as u8])
    });
    let inked = ink.enumerate_pixels().filter(|(_, _, p)| p[0] >= INK);
    let (x0, y0, x1, y1) = inked.fold((u32::MAX, u32::MAX, 0, 0), |(x0, y0, x1, y1), (x, y, _)| {
        (x0.min(x), y0.min(y), x1.max(x), y1.max(y))
    });
    if x0 > x1 {
        return Err(bad("no ink found: the image is blank"));
    }
    let crop = imageops::crop_imm(&ink, x0, y0, x1 - x0 + 1, y1 - y0 + 1).to_image();
    let scale = BOX as f64 / f64::from(crop.width().max(crop.height()));
    let size = |side: u32| ((f64::from(side) * scale).round() as u32).clamp(1, BOX);
    let boxed = imageops::resize(
        &crop,
        size(crop.width()),
        size(crop.height()),
        imageops::FilterType::Triangle,
    );
    // centre of mass of the boxed digit, then the offset that puts it at (14, 14)
    let (mut mass, mut mx, mut my) = (0.0, 0.0, 0.0);
    for (x, y, p) in boxed.enumerate_pixels() {
        let m = f64::from(p[0]);
        (mass, mx, my) = (mass + m, mx + m * f64::from(x), my + m * f64::from(y));
    }
    let mass: f64 = if mass > 0.0 { mass } else { 1.0 };
    let place = |com: f64, len: u32| {
        ((SIDE as f64 / 2.0 - com / mass).round() as i64).clamp(0, (SIDE as u32 - len) as i64)
            as usize
    };
    let (left, top) = (place(mx, boxed.width()), place(my, boxed.height()));
    let mut out = Array2::zeros((SIDE, SIDE));
    for (x, y, p) in boxed.enumerate_pixels() {
        out[[top + y as usize, left + x as usize]] = p[0];
    }
    Ok(out)
}

/// Grayscale, with every transparent pixel blended onto white.
fn on_white_paper(image: &DynamicImage) -> GrayImage {
    let la = image.to_luma_alpha8();
    GrayImage::from_fn(la.width(), la.height(), |x, y| {
        let [l, a] = la.get_pixel(x, y).0;
        let blended = (u32::from(l) * u32::from(a) + 255 * (255 - u32::from(a))) / 255;
        image::Luma([blended as u8])
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Luma, LumaA, Rgb, RgbImage};

    #[test]
    fn dark_and_light_backgrounds_give_the_same_digit() {
        let ink = |x: u32, y: u32| (10..14).contains(&x) && (5..30).contains(&y);
        let dark = GrayImage::from_fn(30, 40, |x, y| Luma([if ink(x, y) { 255 } else { 0 }]));
        let light = RgbImage::from_fn(30, 40, |x, y| {
            if ink(x, y) {
                Rgb([0, 0, 0])
            } else {
                Rgb([250, 250, 250])
            }
        });
        let a = to_mnist(&DynamicImage::ImageLuma8(dark), "dark").unwrap();
        let b = to_mnist(&DynamicImage::ImageRgb8(light), "light").unwrap();
        assert_eq!(a, b);
        // a 25-pixel-tall bar becomes 20 tall, centred: rows 4..24
        assert_eq!((0..28).filter(|&r| a[[r, 14]] > 0).count(), 20);
    }

    #[test]
    fn transparent_background_counts_as_paper() {
        let image = image::ImageBuffer::from_fn(20, 20, |x, _| {
            if x == 10 {
                LumaA([0u8, 255])
            } else {
                LumaA([0, 0])
            }
        });
        let digit = to_mnist(&DynamicImage::ImageLumaA8(image), "transparent").unwrap();
        assert!(digit.iter().any(|&p| p > 0));
        assert_eq!(digit[[0, 0]], 0);
    }

    #[test]
    fn blank_empty_and_unreadable_images_are_errors() {
        let blank = DynamicImage::ImageLuma8(GrayImage::from_pixel(10, 10, Luma([255])));
        assert!(
            to_mnist(&blank, "blank")
                .unwrap_err()
                .to_string()
                .contains("no ink")
        );
        assert!(to_mnist(&DynamicImage::new_luma8(0, 5), "empty").is_err());
        assert!(matches!(
            load_image("/nonexistent.png"),
            Err(Error::Io { .. })
        ));
        let path = std::env::temp_dir().join(format!("lenet5-garbage-{}.png", std::process::id()));
        std::fs::write(&path, b"\x89PNG\r\n\x1a\nnot really").unwrap();
        assert!(matches!(load_image(&path), Err(Error::Image { .. })));
        // a picture wider than MAX_SIDE is refused before it is decoded
        GrayImage::new(MAX_SIDE + 1, 1)
            .save_with_format(&path, image::ImageFormat::Png)
            .unwrap();
        let err = load_image(&path).unwrap_err().to_string();
        assert!(err.contains("limit"), "{err}");
        std::fs::remove_file(path).unwrap();
    }
}
