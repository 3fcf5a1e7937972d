//! A user's picture of one digit, made to look like an MNIST image.
//!
//! MNIST's digits were size-normalised to fit a 20x20 box, keeping their aspect ratio, and
//! centred by centre of mass in a 28x28 field, white ink on black. [`to_mnist`] does the same
//! to any photo or scan, so the network sees what it was trained on.

use std::io::Cursor;
use std::path::Path;

use image::{
    DynamicImage, GenericImageView, GrayImage, ImageDecoder, ImageFormat, ImageReader, Limits,
    imageops,
};
use ndarray::Array2;

use crate::data::mnist::SIDE;
use crate::io::read_limited;
use crate::{Error, Result};

/// The largest picture accepted, in pixels on a side.
pub const MAX_SIDE: u32 = 8192;
/// The largest picture file read, 32 MiB (a 50-megapixel JPEG is about 20 MB).
pub const MAX_FILE_BYTES: u64 = 32 << 20;
/// The most the decoder may allocate, 64 MiB: a 21-megapixel RGB photo, or a 16-megapixel
/// RGBA one. Together with [`MAX_FILE_BYTES`] this bounds the memory a picture can take.
pub const MAX_DECODE_BYTES: u64 = 64 << 20;
/// The picture is looked at with its longer side at most this long (larger ones are averaged
/// down by a whole factor first), which bounds the working memory after decoding.
const WORK_SIDE: u32 = 1024;
/// The side of the box the digit is scaled to fit.
const BOX: u32 = 20;
/// A pixel at least this bright (after inverting a light background) is ink.
const INK: u8 = 64;
/// The ink must span at least this many pixels of the working picture ...
const MIN_INK_SIDE: u32 = 6;
/// ... and at least this fraction of its longer side, or it is a speck, not a digit.
const MIN_INK_FRACTION: f32 = 1.0 / 25.0;

/// Decodes a PNG, JPEG or PNM file of at most [`MAX_FILE_BYTES`] (see [`decode_image`]).
///
/// # Errors
/// [`Error::Io`] when the file cannot be read, [`Error::TooLarge`] when it is larger than
/// [`MAX_FILE_BYTES`], and the errors of [`decode_image`].
pub fn load_image(path: impl AsRef<Path>) -> Result<DynamicImage> {
    let path = path.as_ref();
    let bytes = read_limited(path, MAX_FILE_BYTES, "a picture")?;
    decode_image(&bytes, &path.display().to_string())
}

/// Decodes the bytes of a PNG, JPEG or PNM picture, turned upright by its EXIF orientation
/// (as a phone stores a photo taken sideways). `source_name` names it in errors.
///
/// # Errors
/// [`Error::Image`] when the bytes are not a picture of a supported format, do not decode
/// completely (a truncated file), are over [`MAX_SIDE`] on a side, or would take more than
/// [`MAX_DECODE_BYTES`] to decode.
pub fn decode_image(bytes: &[u8], source_name: &str) -> Result<DynamicImage> {
    let bad = |reason: String| Error::Image {
        source_name: source_name.into(),
        reason,
    };
    let format = image::guess_format(bytes).map_err(|e| bad(e.to_string()))?;
    if format == ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
        return Err(bad(
            "the JPEG ends before its last scan does (a truncated file)".into(),
        ));
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|e| bad(e.to_string()))?;
    if decoder.total_bytes() > MAX_DECODE_BYTES {
        let (w, h) = decoder.dimensions();
        return Err(bad(format!(
            "a {w}x{h} {:?} picture takes {} bytes to decode, more than the limit of {MAX_DECODE_BYTES}",
            decoder.color_type(),
            decoder.total_bytes()
        )));
    }
    let orientation = decoder.orientation().map_err(|e| bad(e.to_string()))?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(|e| bad(e.to_string()))?;
    image.apply_orientation(orientation);
    Ok(image)
}

/// Whether a JPEG's end-of-image marker follows its last start-of-scan. Entropy-coded data
/// never holds a marker, so a file cut anywhere in or before its last scan lacks one (an
/// embedded thumbnail's markers come before the main image's).
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last_scan = bytes.windows(2).rposition(|m| m == [0xff, 0xda]);
    last_scan.is_some_and(|at| bytes[at..].windows(2).any(|m| m == [0xff, 0xd9]))
}

/// The digit in `image` as MNIST would have it: `[28, 28]`, white ink (255) on black (0).
///
/// Grayscale (a transparent pixel counts as white paper), averaged down to at most 1024
/// pixels on a side; then the paper is found before the ink: the picture's two levels are
/// split by Otsu's threshold, and a large light page on a darker surround (a sheet on a desk)
/// becomes the paper, its surround painted over with it. Ink is what differs from the paper
/// (the picture is inverted when the paper is light), stretched so that the paper is black and
/// the strongest stroke white, cropped, scaled so that its longer side is 20 pixels, and placed
/// so that its centre of mass is at the centre of the 28x28 field.
///
/// ```
/// use lenet5::image::{DynamicImage, GrayImage, Luma}; // the crate's image, re-exported
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
/// [`Error::Image`] naming `source_name` when the image is empty, has no ink, or has too
/// little ink to be a digit (a speck: less than 1/25 of the picture's longer side).
pub fn to_mnist(image: &DynamicImage, source_name: &str) -> Result<Array2<u8>> {
    let bad = |reason: String| Error::Image {
        source_name: source_name.into(),
        reason,
    };
    if image.width() == 0 || image.height() == 0 {
        return Err(bad("the image is empty".into()));
    }
    let mut gray = grayscale(image);
    let Some(threshold) = otsu(&gray) else {
        return Err(bad("no digit found: the image is blank".into()));
    };
    let mut light = border_is_light(&gray, threshold);
    if !light && cover_surround(&mut gray, threshold) {
        light = true;
    }
    let (w, h) = gray.dimensions();
    let (sum, count) = border(w, h).fold((0u64, 0u64), |(s, n), (x, y)| {
        (s + u64::from(gray.get_pixel(x, y)[0]), n + 1)
    });
    // ink is what differs from the paper: invert a light background, then stretch the range
    // from the paper's level to the darkest stroke onto 0..=255 (grey paper becomes black)
    let ink_level = |p: u8| if light { 255 - p } else { p };
    let paper = ink_level((sum / count) as u8);
    let darkest = gray.pixels().map(|p| ink_level(p[0])).max().unwrap_or(0);
    if darkest <= paper {
        return Err(bad("no digit found: the image is blank".into()));
    }
    let range = f32::from(darkest - paper);
    for p in gray.pixels_mut() {
        let above_paper = f32::from(ink_level(p[0]).saturating_sub(paper));
        p[0] = (above_paper * 255.0 / range).round() as u8;
    }
    let ink = gray;
    let inked = ink.enumerate_pixels().filter(|(_, _, p)| p[0] >= INK);
    let (x0, y0, x1, y1) = inked.fold((u32::MAX, u32::MAX, 0, 0), |(x0, y0, x1, y1), (x, y, _)| {
        (x0.min(x), y0.min(y), x1.max(x), y1.max(y))
    });
    if x0 > x1 {
        return Err(bad("no digit found: the image is blank".into()));
    }
    let (ink_w, ink_h) = (x1 - x0 + 1, y1 - y0 + 1);
    let least = (MIN_INK_FRACTION * w.max(h) as f32).max(MIN_INK_SIDE as f32);
    if (ink_w.max(ink_h) as f32) < least {
        return Err(bad(format!(
            "no digit found: the only ink is a {ink_w}x{ink_h} speck in a {w}x{h} picture"
        )));
    }
    let crop = imageops::crop_imm(&ink, x0, y0, ink_w, ink_h).to_image();
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

/// Grayscale (Rec. 709 luma, as `image` computes it), every transparent pixel blended onto
/// white, and averaged over whole `f x f` blocks so that the longer side is at most
/// [`WORK_SIDE`]: one pass over the picture, no full-size copy.
fn grayscale(image: &DynamicImage) -> GrayImage {
    let (w, h) = image.dimensions();
    let f = w.max(h).div_ceil(WORK_SIDE);
    let (sw, sh) = (w.div_ceil(f), h.div_ceil(f));
    let mut sums = vec![0u32; (sw * sh) as usize];
    for (x, y, p) in image.pixels() {
        let [r, g, b, a] = p.0.map(u32::from);
        let luma = (2126 * r + 7152 * g + 722 * b) / 10_000;
        sums[((y / f) * sw + x / f) as usize] += (luma * a + 255 * (255 - a)) / 255;
    }
    GrayImage::from_fn(sw, sh, |x, y| {
        let covered = |at: u32, side: u32| (side - at * f).min(f);
        let n = covered(x, w) * covered(y, h);
        image::Luma([(sums[(y * sw + x) as usize] / n) as u8])
    })
}

/// Otsu's threshold: the level `t` that best splits the pixels into `<= t` and `> t` (the
/// largest between-class variance); `None` when every pixel has one level.
fn otsu(gray: &GrayImage) -> Option<u8> {
    let mut histogram = [0u64; 256];
    gray.pixels()
        .for_each(|p| histogram[usize::from(p[0])] += 1);
    let total: u64 = histogram.iter().sum();
    let sum: f64 = (0..256).map(|i| i as f64 * histogram[i] as f64).sum();
    let (mut below, mut below_sum, mut best) = (0u64, 0.0, None);
    let mut best_variance = -1.0;
    for (t, &count) in histogram.iter().enumerate().take(255) {
        below += count;
        below_sum += t as f64 * count as f64;
        let above = total - below;
        if below == 0 || above == 0 {
            continue;
        }
        let (mean_below, mean_above) = (below_sum / below as f64, (sum - below_sum) / above as f64);
        let variance = below as f64 * above as f64 * (mean_below - mean_above).powi(2);
        if variance > best_variance {
            (best_variance, best) = (variance, Some(t as u8));
        }
    }
    best
}

/// The border pixels of a `w x h` picture, each once.
fn border(w: u32, h: u32) -> impl Iterator<Item = (u32, u32)> {
    (0..h).flat_map(move |y| {
        let every = y == 0 || y == h - 1;
        let xs: Box<dyn Iterator<Item = u32>> = if every || w < 2 {
            Box::new(0..w)
        } else {
            Box::new([0, w - 1].into_iter())
        };
        xs.map(move |x| (x, y))
    })
}

/// Whether most border pixels are above `threshold`.
fn border_is_light(gray: &GrayImage, threshold: u8) -> bool {
    let (w, h) = gray.dimensions();
    let (light, count) = border(w, h).fold((0, 0), |(l, n), (x, y)| {
        (l + usize::from(gray.get_pixel(x, y)[0] > threshold), n + 1)
    });
    2 * light > count
}

/// Finds a page on a dark surround (a sheet of paper photographed on a desk) and paints the
/// surround with the page's level, so that the page becomes the paper; returns whether it did.
///
/// The surround is the dark pixels connected to the border. What it encloses is a page when
/// it covers at least a quarter of the picture, is at least 80 % light (the ink on a page is
/// sparse; a light-on-dark digit's holes are not), and is broad: its largest inscribed disc
/// has a radius of at least a quarter of its longer side (a stroke's is far smaller).
fn cover_surround(gray: &mut GrayImage, threshold: u8) -> bool {
    let (w, h) = gray.dimensions();
    let (wu, hu) = (w as usize, h as usize);
    let dark = |p: u8| p <= threshold;
    // flood fill from the border through dark pixels, 4-connected
    let mut outside = vec![false; wu * hu];
    let mut stack: Vec<(u32, u32)> = border(w, h)
        .filter(|&(x, y)| dark(gray.get_pixel(x, y)[0]))
        .collect();
    while let Some((x, y)) = stack.pop() {
        let i = y as usize * wu + x as usize;
        if outside[i] || !dark(gray.get_pixel(x, y)[0]) {
            continue;
        }
        outside[i] = true;
        if x > 0 {
            stack.push((x - 1, y));
        }
        if x + 1 < w {
            stack.push((x + 1, y));
        }
        if y > 0 {
            stack.push((x, y - 1));
        }
        if y + 1 < h {
            stack.push((x, y + 1));
        }
    }
    let inside: Vec<usize> = (0..wu * hu).filter(|&i| !outside[i]).collect();
    let light: Vec<u8> = inside
        .iter()
        .map(|&i| gray.as_raw()[i])
        .filter(|&p| !dark(p))
        .collect();
    if 4 * inside.len() < wu * hu || 5 * light.len() < 4 * inside.len() {
        return false;
    }
    let (x0, x1) = (
        inside.iter().map(|i| i % wu).min(),
        inside.iter().map(|i| i % wu).max(),
    );
    let (y0, y1) = (
        inside.first().map(|i| i / wu),
        inside.last().map(|i| i / wu),
    );
    let (Some(x0), Some(x1), Some(y0), Some(y1)) = (x0, x1, y0, y1) else {
        return false;
    };
    let longer = (x1 - x0 + 1).max(y1 - y0 + 1);
    if 4 * inscribed_radius(&outside, wu, hu) < longer {
        return false;
    }
    let level = (light.iter().map(|&p| u64::from(p)).sum::<u64>() / light.len() as u64) as u8;
    for (p, &out) in gray.iter_mut().zip(&outside) {
        if out {
            *p = level;
        }
    }
    true
}

/// The radius of the largest disc inside the region where `outside` is false (picture edges
/// count as outside), by a two-pass city-block distance transform.
fn inscribed_radius(outside: &[bool], w: usize, h: usize) -> usize {
    let far = w + h;
    let mut d: Vec<usize> = outside.iter().map(|&o| if o { 0 } else { far }).collect();
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let up = if y > 0 { d[i - w] } else { 0 };
            let left = if x > 0 { d[i - 1] } else { 0 };
            d[i] = d[i].min(up + 1).min(left + 1);
        }
    }
    for y in (0..h).rev() {
        for x in (0..w).rev() {
            let i = y * w + x;
            let down = if y + 1 < h { d[i + w] } else { 0 };
            let right = if x + 1 < w { d[i + 1] } else { 0 };
            d[i] = d[i].min(down + 1).min(right + 1);
        }
    }
    d.into_iter().max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Luma, LumaA, Rgb, RgbImage};
    use rand::{RngExt, SeedableRng};
    use std::io::Cursor;

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
                .contains("no digit found")
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

    /// A 100 x 140 picture of a dark vertical bar (a "1") on light paper.
    fn one_on_paper() -> GrayImage {
        GrayImage::from_fn(100, 140, |x, y| {
            let ink = (45..57).contains(&x) && (20..120).contains(&y);
            Luma([if ink { 20 } else { 230 }])
        })
    }

    fn jpeg(image: &GrayImage) -> Vec<u8> {
        let mut bytes = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90)
            .encode_image(image)
            .unwrap();
        bytes
    }

    #[test]
    fn truncated_pictures_are_errors() {
        let image = one_on_paper();
        let mut png = Vec::new();
        image
            .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
            .unwrap();
        // bytes after the end-of-image marker, as some cameras write, are no truncation
        let mut trailing = jpeg(&image);
        trailing.extend([0u8; 16]);
        decode_image(&trailing, "trailing").unwrap();
        for bytes in [jpeg(&image), png] {
            decode_image(&bytes, "whole").unwrap();
            for percent in (30..=95).step_by(5) {
                let cut = &bytes[..bytes.len() * percent / 100];
                let err = decode_image(cut, "cut").unwrap_err();
                assert!(matches!(err, Error::Image { .. }), "{percent} %: {err}");
            }
        }
    }

    #[test]
    fn exif_orientation_turns_the_picture_upright() {
        // stored 140 wide and 100 high, with orientation 6: shown turned 90° clockwise
        let stored = imageops::rotate270(&one_on_paper());
        let mut bytes = jpeg(&stored);
        // APP1 "Exif", a big-endian TIFF header and one IFD entry: tag 0x0112, SHORT, 1, value 6
        let mut tiff = b"MM\0\x2a\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0\x06\0\0".to_vec();
        tiff.extend([0, 0, 0, 0]);
        let mut app1 = vec![0xff, 0xe1];
        app1.extend(((2 + 6 + tiff.len()) as u16).to_be_bytes());
        app1.extend(b"Exif\0\0");
        app1.extend(tiff);
        bytes.splice(2..2, app1);
        let upright = decode_image(&bytes, "sideways").unwrap();
        assert_eq!(upright.dimensions(), (100, 140));
        let digit = to_mnist(&upright, "sideways").unwrap();
        // an upright bar: 20 rows tall in the middle column
        assert_eq!((0..28).filter(|&r| digit[[r, 14]] > 128).count(), 20);
    }

    #[test]
    fn a_page_on_a_dark_desk_is_the_paper() {
        let page = one_on_paper();
        // the page in the middle of a dark desk twice its size
        let desk = GrayImage::from_fn(200, 240, |x, y| {
            let on_page = (50..150).contains(&x) && (50..190).contains(&y);
            Luma([if on_page {
                page.get_pixel(x - 50, y - 50)[0]
            } else {
                35
            }])
        });
        let alone = to_mnist(&DynamicImage::ImageLuma8(page), "page").unwrap();
        let on_desk = to_mnist(&DynamicImage::ImageLuma8(desk), "desk").unwrap();
        assert_eq!(on_desk, alone);
    }

    #[test]
    fn a_speck_is_no_digit() {
        let speck = GrayImage::from_fn(600, 800, |x, y| {
            Luma([if (300..305).contains(&x) && (400..404).contains(&y) {
                0
            } else {
                240
            }])
        });
        let err = to_mnist(&DynamicImage::ImageLuma8(speck), "speck")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no digit found") && err.contains("5x4 speck"),
            "{err}"
        );
    }

    /// A `w`x`h` bar of ink (0, with an `edge` of 128) at `(x, y)` on a 500x500 page of 240.
    fn bar_on_a_page(x: u32, y: u32, w: u32, h: u32, edge: u32) -> DynamicImage {
        DynamicImage::ImageLuma8(GrayImage::from_fn(500, 500, |px, py| {
            let inside =
                |m: u32| (x + m..x + w - m).contains(&px) && (y + m..y + h - m).contains(&py);
            Luma([if inside(edge) {
                0
            } else if inside(0) {
                128
            } else {
                240
            }])
        }))
    }

    #[test]
    fn the_least_ink_is_a_25th_of_the_longer_side() {
        // 500 px: a digit must be 20 px on its longer side
        for (side, ok) in [(19, false), (20, true), (21, true)] {
            let result = to_mnist(&bar_on_a_page(100, 100, 8, side, 1), "bar");
            assert_eq!(result.is_ok(), ok, "{side}: {result:?}");
        }
    }

    #[test]
    fn the_digit_fills_the_box_at_full_range_with_its_centre_of_mass_in_the_middle() {
        // a tall bar off the page's centre: scaled to 20 px high, ink up to 255, centred
        let mnist = to_mnist(&bar_on_a_page(50, 300, 60, 150, 20), "bar").unwrap();
        assert!(
            mnist.iter().any(|&v| v >= 240),
            "the ink is stretched to full range"
        );
        let rows: Vec<usize> = (0..SIDE)
            .filter(|&r| mnist.row(r).iter().any(|&v| v > 0))
            .collect();
        assert_eq!(rows.len(), BOX as usize, "{mnist:?}");
        let cols = (0..SIDE)
            .filter(|&c| mnist.column(c).iter().any(|&v| v > 0))
            .count();
        assert!((7..=9).contains(&cols), "{cols} columns: 60 / 150 of 20");
        let mass: f64 = mnist.iter().map(|&v| f64::from(v)).sum();
        let centre = |along: ndarray::Axis| {
            let weighted = mnist.indexed_iter().map(|((r, c), &v)| {
                let at = if along == ndarray::Axis(0) { r } else { c };
                at as f64 * f64::from(v)
            });
            weighted.sum::<f64>() / mass
        };
        for axis in [ndarray::Axis(0), ndarray::Axis(1)] {
            assert!((centre(axis) - 13.5).abs() <= 1.0, "{}", centre(axis));
        }
        // the bar's wide 128 edge is half way between paper and ink: about 134 after the stretch
        assert!(mnist.iter().any(|&v| (100..170).contains(&v)), "{mnist:?}");
    }

    #[test]
    fn otsu_matches_an_exact_search_for_the_best_split() {
        let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(3);
        for _ in 0..200 {
            let levels: Vec<u8> = (0..rng.random_range(2..6)).map(|_| rng.random()).collect();
            let gray = GrayImage::from_fn(7, 9, |_, _| {
                Luma([levels[rng.random_range(0..levels.len())]])
            });
            // between-class variance b·a·(mean_b - mean_a)², as the exact fraction
            // (a·Σb - b·Σa)² / (a·b), compared by cross-multiplying in integers
            let pixels: Vec<u64> = gray.pixels().map(|p| u64::from(p[0])).collect();
            let split = |t: u64| {
                let (b, a): (Vec<u64>, Vec<u64>) = pixels.iter().partition(|&&v| v <= t);
                let (nb, na) = (b.len() as i128, a.len() as i128);
                let (sb, sa) = (b.iter().sum::<u64>() as i128, a.iter().sum::<u64>() as i128);
                (na > 0 && nb > 0).then(|| ((na * sb - nb * sa).pow(2), na * nb))
            };
            let mut best: Option<(u64, (i128, i128))> = None;
            for t in 0..255 {
                if let Some((num, den)) = split(t)
                    && best.is_none_or(|(_, (bn, bd))| num * bd > bn * den)
                {
                    best = Some((t, (num, den)));
                }
            }
            assert_eq!(
                otsu(&gray).map(u64::from),
                best.map(|(t, _)| t),
                "{levels:?}"
            );
        }
    }

    #[test]
    fn large_pictures_are_averaged_down_to_the_same_digit() {
        let small = one_on_paper();
        let large = imageops::resize(&small, 1000, 1400, imageops::FilterType::Nearest);
        let a = to_mnist(&DynamicImage::ImageLuma8(small), "small").unwrap();
        let b = to_mnist(&DynamicImage::ImageLuma8(large), "large").unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn otsu_splits_two_levels_between_them() {
        // 30 pixels at 40 and 70 at 200: any t in 40..200 splits them; Otsu's picks the first
        let gray = GrayImage::from_fn(10, 10, |x, y| {
            Luma([if y * 10 + x < 30 { 40 } else { 200 }])
        });
        assert_eq!(otsu(&gray), Some(40));
        // three levels: the split keeps the two close ones together
        let gray = GrayImage::from_fn(10, 10, |x, _| Luma([[10, 20, 250][(x % 3) as usize]]));
        assert_eq!(otsu(&gray), Some(20));
        assert_eq!(otsu(&GrayImage::from_pixel(4, 4, Luma([9]))), None);
    }

    #[test]
    fn border_visits_each_edge_pixel_once() {
        let mut seen: Vec<(u32, u32)> = border(4, 3).collect();
        seen.sort_unstable();
        let expected = [
            (0, 0),
            (0, 1),
            (0, 2),
            (1, 0),
            (1, 2),
            (2, 0),
            (2, 2),
            (3, 0),
            (3, 1),
            (3, 2),
        ];
        assert_eq!(seen, expected);
        assert_eq!(border(1, 1).count(), 1);
        assert_eq!(border(5, 1).count(), 5);
        assert_eq!(border(1, 4).count(), 4);
    }

    #[test]
    fn a_border_is_light_when_more_than_half_its_pixels_are() {
        // a 4x3 picture has 10 border pixels and 2 inside; light ones are above 100
        let with_light = |n: usize| {
            let mut gray = GrayImage::from_pixel(4, 3, Luma([0]));
            gray.put_pixel(1, 1, Luma([255])); // inside pixels never count
            gray.put_pixel(2, 1, Luma([255]));
            for (x, y) in border(4, 3).take(n) {
                gray.put_pixel(x, y, Luma([101]));
            }
            border_is_light(&gray, 100)
        };
        assert!(!with_light(1));
        assert!(!with_light(5));
        assert!(with_light(6));
        assert!(with_light(10));
        // at the threshold itself a pixel is dark
        assert!(!border_is_light(
            &GrayImage::from_pixel(4, 3, Luma([100])),
            100
        ));
    }

    #[test]
    fn inscribed_radius_of_squares_and_bars() {
        // a 7x7 square of inside in a 9x9 picture: its centre is 4 steps from the outside
        let square: Vec<bool> = (0..81)
            .map(|i| !(1..8).contains(&(i % 9)) || !(1..8).contains(&(i / 9)))
            .collect();
        assert_eq!(inscribed_radius(&square, 9, 9), 4);
        // the picture's edge counts as outside: an all-inside 5x5 has radius 3
        assert_eq!(inscribed_radius(&[false; 25], 5, 5), 3);
        // a bar 1 pixel wide
        let bar: Vec<bool> = (0..25).map(|i| i % 5 != 2).collect();
        assert_eq!(inscribed_radius(&bar, 5, 5), 1);
        assert_eq!(inscribed_radius(&[true; 4], 2, 2), 0);
    }

    #[test]
    fn grayscale_weighs_channels_blends_alpha_and_averages_blocks() {
        // Rec. 709: pure red 54, pure green 182, pure blue 18
        let rgb = RgbImage::from_fn(3, 1, |x, _| {
            Rgb([[255, 0, 0], [0, 255, 0], [0, 0, 255]][x as usize])
        });
        let gray = grayscale(&DynamicImage::ImageRgb8(rgb));
        assert_eq!(gray.as_raw(), &[54, 182, 18]);
        // black at half opacity on white paper: 127; fully transparent: white; gray 100 at
        // half opacity: (100·128 + 255·127) / 255 = 177
        let la = image::ImageBuffer::from_fn(3, 1, |x, _| {
            LumaA([[0u8, 0, 100][x as usize], [128, 0, 128][x as usize]])
        });
        assert_eq!(
            grayscale(&DynamicImage::ImageLumaA8(la)).as_raw(),
            &[127, 255, 177]
        );
        // 2048 wide: averaged over 2x2 blocks to 1024, each block's mean
        let wide = GrayImage::from_fn(2048, 2, |x, y| {
            Luma([if (x + y) % 2 == 0 { 0 } else { 200 }])
        });
        let small = grayscale(&DynamicImage::ImageLuma8(wide));
        assert_eq!(small.dimensions(), (1024, 1));
        assert!(small.pixels().all(|p| p[0] == 100));
        // a side that is not a multiple: the last block averages the pixels it has
        let odd = GrayImage::from_fn(1025, 1, |x, _| Luma([if x == 1024 { 90 } else { 10 }]));
        let small = grayscale(&DynamicImage::ImageLuma8(odd));
        assert_eq!(small.dimensions(), (513, 1));
        assert_eq!(
            (small.get_pixel(0, 0)[0], small.get_pixel(512, 0)[0]),
            (10, 90)
        );
    }

    /// A `w`x`h` page of 230 at `(x, y)` on a `pw`x`ph` desk of 35.
    fn page_on_desk(pw: u32, ph: u32, (x, y, w, h): (u32, u32, u32, u32)) -> GrayImage {
        GrayImage::from_fn(pw, ph, |i, j| {
            let on_page = (x..x + w).contains(&i) && (y..y + h).contains(&j);
            Luma([if on_page { 230 } else { 35 }])
        })
    }

    #[test]
    fn the_surround_is_filled_in_every_direction() {
        // a page with four L-shaped notches of desk cut into it, one from each side, each
        // turning after it enters: reaching all of them takes steps right, left, down and up
        let mut gray = page_on_desk(120, 120, (10, 10, 100, 100));
        let mut cut = |xs: std::ops::Range<u32>, ys: std::ops::Range<u32>| {
            for x in xs {
                for y in ys.clone() {
                    gray.put_pixel(x, y, Luma([35]));
                }
            }
        };
        cut(40..44, 10..30); // from the top, down,
        cut(40..60, 26..30); // then right
        cut(76..80, 90..110); // from the bottom, up,
        cut(60..80, 90..94); // then left
        cut(10..30, 70..74); // from the left, right,
        cut(26..30, 70..90); // then down
        cut(90..110, 46..50); // from the right, left,
        cut(90..94, 30..50); // then up
        assert!(cover_surround(&mut gray, 128));
        assert!(gray.pixels().all(|p| p[0] == 230), "a notch was left dark");
    }

    #[test]
    fn a_page_must_cover_a_quarter_of_the_picture_and_be_broad() {
        let covers = |pw, ph, page| cover_surround(&mut page_on_desk(pw, ph, page), 128);
        // 100x100 in 200x200 is exactly a quarter; one column less is not
        assert!(covers(200, 200, (50, 50, 100, 100)));
        assert!(!covers(200, 200, (50, 50, 99, 100)));
        // broad means an inscribed radius of at least a quarter of the longer side, whichever
        // side that is: a band of 40 is broad up to 4 · 20 = 80 long, not at 81
        for (long, broad) in [(80, true), (81, false), (200, false)] {
            assert_eq!(
                covers(long + 20, 100, (10, 30, long, 40)),
                broad,
                "{long} wide"
            );
            assert_eq!(
                covers(100, long + 20, (30, 10, 40, long)),
                broad,
                "{long} tall"
            );
        }
    }

    #[test]
    fn a_page_must_be_at_least_four_fifths_light() {
        // a 100x100 page with `ink` dark pixels inside it, none touching the desk
        let covers = |ink: u32| {
            let mut gray = page_on_desk(200, 200, (50, 50, 100, 100));
            for k in 0..ink {
                gray.put_pixel(60 + k % 80, 60 + k / 80, Luma([35]));
            }
            cover_surround(&mut gray, 128)
        };
        assert!(covers(2000)); // 8 000 of 10 000 light: exactly four fifths
        assert!(!covers(2001));
    }

    #[test]
    fn a_light_on_dark_zero_is_not_taken_for_a_page() {
        // white ring on black, MNIST's way round: its hole is dark and enclosed, but it is no page
        let ring = GrayImage::from_fn(40, 40, |x, y| {
            let d = ((x as f32 - 19.5).powi(2) + (y as f32 - 19.5).powi(2)).sqrt();
            Luma([if (9.0..15.0).contains(&d) { 255 } else { 0 }])
        });
        let mut gray = ring.clone();
        assert!(!cover_surround(&mut gray, otsu(&ring).unwrap()));
        assert_eq!(gray, ring);
        let digit = to_mnist(&DynamicImage::ImageLuma8(ring), "ring").unwrap();
        assert_eq!(digit[[14, 14]], 0); // the hole stays background
        assert!(digit[[14, 4]] > 128 || digit[[14, 5]] > 128); // the ring's left side is ink
    }
}
