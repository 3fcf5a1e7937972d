//! Hostile pictures stay within the memory bound the README gives: small files that decode to
//! huge images, a huge colour profile, a picture followed by a gigabyte of zeros, and the
//! largest picture accepted. The one test in this file runs in a process of its own, so the
//! peak resident memory it reads (`VmHWM`) is this test's.

use std::io::Write;

use flate2::Compression;
use flate2::write::ZlibEncoder;
use lenet5::digit::{MAX_DECODE_BYTES, decode_image, load_image, to_mnist};
use lenet5::{Error, LeNet5};

/// The bound the README states for any picture input.
const PEAK_BOUND_MB: u64 = 300;

/// One PNG chunk: length, type, data, CRC-32 of type and data.
fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend(kind);
    out.extend(data);
    let mut crc = crc32fast::Hasher::new();
    crc.update(kind);
    crc.update(data);
    out.extend(crc.finalize().to_be_bytes());
    out
}

/// zlib of `len` zero bytes, written in pieces so that they are never all in memory.
fn zeros_deflated(len: usize) -> Vec<u8> {
    let mut z = ZlibEncoder::new(Vec::new(), Compression::best());
    let piece = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(piece.len());
        z.write_all(&piece[..n]).unwrap();
        left -= n;
    }
    z.finish().unwrap()
}

/// A PNG of `width x height`, `depth` bits per sample, colour `color` (PNG's code), all zero
/// samples, with `extra` chunks before the image data.
fn png(width: u32, height: u32, depth: u8, color: u8, extra: &[Vec<u8>]) -> Vec<u8> {
    let samples = match color {
        0 | 3 => 1,
        2 => 3,
        4 => 2,
        _ => 4,
    };
    let row = (width as usize * samples * usize::from(depth)).div_ceil(8) + 1;
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([depth, color, 0, 0, 0]);
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend(chunk(b"IHDR", &ihdr));
    if color == 3 {
        bytes.extend(chunk(b"PLTE", &[0, 0, 0, 255, 255, 255]));
    }
    extra.iter().for_each(|c| bytes.extend(c));
    bytes.extend(chunk(b"IDAT", &zeros_deflated(row * height as usize)));
    bytes.extend(chunk(b"IEND", &[]));
    bytes
}

/// The peak resident memory of this process so far, in MB.
fn peak_rss_mb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1000)
}

#[test]
fn hostile_pictures_stay_under_the_memory_bound() {
    let refused = |bytes: &[u8], what: &str| {
        let err = decode_image(bytes, what).unwrap_err();
        assert!(matches!(err, Error::Image { .. }), "{what}: {err}");
        eprintln!("{what} ({} bytes): {err}", bytes.len());
    };
    // a palette image that expands to 8000 x 8000 RGB, 192 MB
    refused(&png(8000, 8000, 1, 3, &[]), "palette PNG");
    // 16-bit RGBA, 3000 x 3000: 72 MB
    refused(&png(3000, 3000, 16, 6, &[]), "16-bit RGBA PNG");
    // a colour profile that inflates to 600 MB in a 64 x 64 picture: the profile is dropped
    let mut iccp = b"icc\0\0".to_vec();
    iccp.extend(zeros_deflated(600 << 20));
    let profiled = png(64, 64, 8, 0, &[chunk(b"iCCP", &iccp)]);
    match decode_image(&profiled, "iCCP PNG") {
        Ok(image) => assert_eq!((image.width(), image.height()), (64, 64)),
        Err(err) => assert!(matches!(err, Error::Image { .. }), "{err}"),
    }

    // a valid picture followed by 1.5 GB of zeros (a sparse file) is refused unread
    let dir = std::env::temp_dir().join(format!("lenet5-pictures-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let padded = dir.join("padded.png");
    let mut file = std::fs::File::create(&padded).unwrap();
    file.write_all(&png(64, 64, 8, 0, &[])).unwrap();
    file.set_len(1500 << 20).unwrap();
    drop(file);
    assert!(matches!(load_image(&padded), Err(Error::TooLarge { .. })));

    // the largest accepted: an RGB picture just under the decoding limit, with a digit
    let side = ((MAX_DECODE_BYTES / 3) as f64).sqrt() as u32 - 1;
    let big = image::RgbImage::from_fn(side, side, |x, y| {
        let bar =
            (side * 9 / 20..side * 11 / 20).contains(&x) && (side / 5..side * 4 / 5).contains(&y);
        image::Rgb(if bar { [10, 10, 10] } else { [240, 240, 240] })
    });
    let path = dir.join("big.png");
    big.save(&path).unwrap();
    drop(big);
    let image = load_image(&path).unwrap();
    let digit = to_mnist(&image, "big").unwrap();
    drop(image);
    let prediction = LeNet5::pretrained().classify(digit.view()).unwrap();
    eprintln!("{side}x{side} RGB picture read as {}", prediction.digit);
    std::fs::remove_dir_all(&dir).unwrap();

    if let Some(peak) = peak_rss_mb() {
        eprintln!("peak resident memory: {peak} MB");
        assert!(peak < PEAK_BOUND_MB, "peak resident memory {peak} MB");
    }
}
