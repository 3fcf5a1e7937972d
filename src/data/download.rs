//! Fetching MNIST from the public mirrors torchvision uses (cargo feature `download`).
//!
//! Each file is checked by the SHA-256 of its *decompressed* bytes, so a mirror that
//! recompresses the files is still accepted and a corrupted download never is, and written
//! through a temporary file and a rename, so an interrupted download leaves no half file.

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::idx::MAX_IDX_BYTES;
use crate::io::write_atomic;
use crate::{Error, Result};

/// The mirrors tried in turn, as torchvision lists them.
pub const MIRRORS: [&str; 2] = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
];

/// The four MNIST files and the SHA-256 of each one's decompressed bytes.
pub const FILES: [(&str, &str); 4] = [
    (
        "train-images-idx3-ubyte",
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    ),
    (
        "train-labels-idx1-ubyte",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    ),
    (
        "t10k-images-idx3-ubyte",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    ),
    (
        "t10k-labels-idx1-ubyte",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    ),
];

/// The largest compressed file accepted from a mirror (MNIST's largest is 9.9 MB).
const MAX_DOWNLOAD: u64 = 64 << 20;

/// Downloads every MNIST file missing from `dir` (present as `name` or `name.gz` counts) into
/// `dir/name.gz`, creating `dir` only when a file has arrived, calling `progress(name, bytes so far, total if known)` as bytes arrive.
///
/// # Errors
/// [`Error::Io`] when `dir` cannot be created or written, [`Error::Download`] naming the file
/// and what each mirror answered when no mirror gives a file with the right checksum.
pub fn fetch_missing(dir: &Path, mut progress: impl FnMut(&str, u64, Option<u64>)) -> Result<()> {
    for (name, digest) in FILES {
        if dir.join(name).exists() || dir.join(format!("{name}.gz")).exists() {
            continue;
        }
        let mut failures = Vec::new();
        let fetched = MIRRORS.iter().find_map(|mirror| {
            let url = format!("{mirror}{name}.gz");
            let bytes = fetch(&url, |done, total| progress(name, done, total));
            match bytes.and_then(|bytes| verify(&bytes, digest).map(|()| bytes)) {
                Ok(bytes) => Some(bytes),
                Err(reason) => {
                    failures.push(format!("{url}: {reason}"));
                    None
                }
            }
        });
        let Some(bytes) = fetched else {
            return Err(Error::Download {
                file: name.into(),
                reason: failures.join("; "),
            });
        };
        // created only now, so that a mistyped directory is not made when nothing arrives
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.into(),
            source,
        })?;
        write_atomic(&dir.join(format!("{name}.gz")), &bytes)?;
    }
    Ok(())
}

/// The body of `url`, at most [`MAX_DOWNLOAD`] bytes.
fn fetch(
    url: &str,
    mut progress: impl FnMut(u64, Option<u64>),
) -> std::result::Result<Vec<u8>, String> {
    let mut response = ureq::get(url).call().map_err(|e| e.to_string())?;
    let total = response.body().content_length();
    let mut reader = response
        .body_mut()
        .with_config()
        .limit(MAX_DOWNLOAD)
        .reader();
    let (mut bytes, mut chunk) = (Vec::new(), vec![0; 1 << 16]);
    loop {
        let n = reader.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            return Ok(bytes);
        }
        bytes.extend_from_slice(&chunk[..n]);
        progress(bytes.len() as u64, total);
    }
}

/// Checks that the gzip stream `gz` decompresses to bytes whose SHA-256 is `digest` (hex).
///
/// # Errors
/// Says whether the stream is corrupt or the digest differs.
pub fn verify(gz: &[u8], digest: &str) -> std::result::Result<(), String> {
    // hashed as it is decompressed, never held whole
    let mut stream = flate2::read::MultiGzDecoder::new(gz).take(MAX_IDX_BYTES);
    let (mut hasher, mut chunk) = (Sha256::new(), vec![0u8; 1 << 16]);
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => hasher.update(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("corrupt gzip stream: {e}")),
        }
    }
    let got: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if got == digest {
        Ok(())
    } else {
        Err(format!(
            "SHA-256 of the decompressed file is {got}, expected {digest}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn verify_checks_the_decompressed_bytes() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"abc").unwrap();
        let gz = gz.finish().unwrap();
        // SHA-256("abc"), FIPS 180-2 appendix B.1
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(verify(&gz, abc), Ok(()));
        assert!(
            verify(&gz, &abc.replace("b", "c"))
                .unwrap_err()
                .contains("expected")
        );
        assert!(verify(&gz[..gz.len() - 4], abc).is_err());
    }

    #[test]
    fn files_already_present_are_not_fetched() {
        let dir = std::env::temp_dir().join(format!("lenet5-download-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, _) in FILES {
            std::fs::write(dir.join(name), b"").unwrap();
        }
        let mut calls = 0;
        fetch_missing(&dir, |_, _, _| calls += 1).unwrap();
        assert_eq!(calls, 0);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
