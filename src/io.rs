//! Saving and loading a network's parameters.
//!
//! A model file is
//!
//! | bytes | content |
//! |---|---|
//! | 8 | magic `LENET5\0M` |
//! | 4 | format version, little-endian `u32` (now 1) |
//! | 8 | payload length, little-endian `u64` |
//! | 4 | CRC-32 of the payload, little-endian `u32` |
//! | n | payload: bincode 2 (standard config) of the architecture name and every parameter's name, shape and values |
//!
//! Saving writes a temporary file beside the target and renames it over the target, so a save
//! that fails leaves any previous file as it was. Loading checks every field and returns
//! [`Error::Model`] for a truncated, corrupted, other-version or other-architecture file.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Error, Result, Sequential};

/// The first bytes of every model file.
pub const MAGIC: [u8; 8] = *b"LENET5\0M";
/// The format version this crate writes and reads.
pub const VERSION: u32 = 1;
/// Magic, version, payload length and checksum.
const HEADER_LEN: usize = 8 + 4 + 8 + 4;
/// The largest payload read, 64 MiB (LeNet-5's is 250 kB): a corrupt length cannot make
/// loading allocate without bound.
pub const MAX_PAYLOAD: usize = 64 << 20;

#[derive(Serialize, Deserialize)]
struct Payload {
    architecture: String,
    params: Vec<Tensor>,
}

#[derive(Serialize, Deserialize)]
struct Tensor {
    name: String,
    shape: Vec<usize>,
    values: Vec<f32>,
}

/// The model file bytes of `net`'s parameters, tagged with `architecture`.
pub fn to_bytes(net: &Sequential, architecture: &str) -> Vec<u8> {
    let params = net
        .named_params()
        .into_iter()
        .map(|(name, p)| Tensor {
            name,
            shape: p.shape.to_vec(),
            values: p.value.to_vec(),
        })
        .collect();
    let payload = Payload {
        architecture: architecture.into(),
        params,
    };
    let payload = bincode::serde::encode_to_vec(&payload, bincode::config::standard())
        .expect("encoding to memory cannot fail");
    let mut bytes = Vec::with_capacity(HEADER_LEN + payload.len());
    bytes.extend(MAGIC);
    bytes.extend(VERSION.to_le_bytes());
    bytes.extend((payload.len() as u64).to_le_bytes());
    bytes.extend(crc32fast::hash(&payload).to_le_bytes());
    bytes.extend(payload);
    bytes
}

/// Loads the parameters in `bytes` into `net`, which must have the same `architecture` and
/// parameter shapes. `source_name` names the bytes in errors. `net` is changed only on success.
///
/// # Errors
/// [`Error::Model`] saying what is wrong: bad magic, another version, a length or checksum
/// that does not match, an undecodable payload, another architecture, or a parameter whose
/// name or shape differs from `net`'s.
pub fn load_bytes(
    net: &mut Sequential,
    architecture: &str,
    bytes: &[u8],
    source_name: &str,
) -> Result<()> {
    let bad = |reason| model_error(source_name, reason);
    let decoded = decode(bytes, source_name)?;
    if decoded.architecture != architecture {
        return Err(bad(format!(
            "a {:?} model, expected {architecture:?}",
            decoded.architecture
        )));
    }
    check_params(net, &decoded.params).map_err(bad)?;
    for ((_, p), tensor) in net.named_params_mut().into_iter().zip(decoded.params) {
        p.value.copy_from_slice(&tensor.values);
    }
    Ok(())
}

/// The architecture name written in the model file `bytes`.
///
/// # Errors
/// As [`load_bytes`], for a file that is not a valid model file.
pub fn architecture_of(bytes: &[u8], source_name: &str) -> Result<String> {
    Ok(decode(bytes, source_name)?.architecture)
}

/// [`Error::Model`] for the file `source_name`.
fn model_error(source_name: &str, reason: String) -> Error {
    Error::Model {
        source_name: source_name.into(),
        reason,
    }
}

/// The payload of the model file `bytes`, after checking its header and checksum.
fn decode(bytes: &[u8], source_name: &str) -> Result<Payload> {
    let bad = |reason| model_error(source_name, reason);
    let Some((header, payload)) = bytes.split_first_chunk::<HEADER_LEN>() else {
        return Err(bad(format!(
            "{} bytes is too short for a model file",
            bytes.len()
        )));
    };
    let field = |range: std::ops::Range<usize>| &header[range];
    if field(0..8) != MAGIC {
        return Err(bad("not a lenet5 model file (bad magic)".into()));
    }
    let version = u32::from_le_bytes(field(8..12).try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(bad(format!(
            "format version {version} is not supported (this crate reads {VERSION})"
        )));
    }
    let len = u64::from_le_bytes(field(12..20).try_into().expect("8 bytes"));
    if len != payload.len() as u64 {
        return Err(bad(format!(
            "header says {len} payload bytes, the file has {} (truncated or padded)",
            payload.len()
        )));
    }
    let crc = u32::from_le_bytes(field(20..24).try_into().expect("4 bytes"));
    if crc != crc32fast::hash(payload) {
        return Err(bad("checksum mismatch: the file is corrupted".into()));
    }
    let config = bincode::config::standard().with_limit::<MAX_PAYLOAD>();
    let (decoded, used): (Payload, usize) = bincode::serde::decode_from_slice(payload, config)
        .map_err(|e| bad(format!("undecodable payload: {e}")))?;
    if used != payload.len() {
        return Err(bad(format!(
            "{} bytes after the payload",
            payload.len() - used
        )));
    }
    Ok(decoded)
}

/// That `tensors` match `net`'s parameters one for one, in name, shape and length.
fn check_params(net: &Sequential, tensors: &[Tensor]) -> std::result::Result<(), String> {
    let params = net.named_params();
    if params.len() != tensors.len() {
        return Err(format!(
            "{} parameters, the network has {}",
            tensors.len(),
            params.len()
        ));
    }
    for ((name, p), t) in params.iter().zip(tensors) {
        if *name != t.name || p.shape != t.shape.as_slice() || t.values.len() != p.value.len() {
            return Err(format!(
                "parameter {:?} {:?} ({} values) does not match the network's {name:?} {:?}",
                t.name,
                t.shape,
                t.values.len(),
                p.shape
            ));
        }
    }
    Ok(())
}

/// Saves `net`'s parameters to `path` atomically: a temporary file in the same directory,
/// flushed to disk, then renamed over `path`.
///
/// # Errors
/// [`Error::Io`] naming the file when writing or renaming fails; the temporary file is removed
/// and a previous file at `path` is left as it was.
pub fn save(net: &Sequential, architecture: &str, path: impl AsRef<Path>) -> Result<()> {
    write_atomic(path.as_ref(), &to_bytes(net, architecture))
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |file| file.write_all(bytes))
}

/// Runs `write` on a temporary file beside `path`, then flushes it and renames it to `path`.
/// On any error the temporary file is removed and `path` is left as it was.
fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        write(&mut file)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        Error::Io {
            path: path.into(),
            source,
        }
    })
}

/// Loads parameters saved by [`save`] into `net`.
///
/// # Errors
/// [`Error::Io`] when the file cannot be read, and the errors of [`load_bytes`].
pub fn load(net: &mut Sequential, architecture: &str, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    load_bytes(net, architecture, &read(path)?, &path.display().to_string())
}

/// The bytes of the model file `path`, refusing more than a model file can hold.
///
/// # Errors
/// [`Error::Io`] when it cannot be read, [`Error::Model`] when it is too large.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>> {
    read_bounded(path, (HEADER_LEN + MAX_PAYLOAD) as u64)
}

/// The bytes of `path`, or [`Error::Model`] when it holds more than `limit`.
fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    let io_error = |source| Error::Io {
        path: path.into(),
        source,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(io_error)?
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(io_error)?;
    if bytes.len() as u64 > limit {
        return Err(Error::Model {
            source_name: path.display().to_string(),
            reason: format!("larger than {limit} bytes"),
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Layer, LeNet5};
    use rand::SeedableRng;

    const ARCH: &str = "test";

    fn values(net: &Sequential) -> Vec<f32> {
        net.params().iter().flat_map(|p| p.value.to_vec()).collect()
    }

    #[test]
    fn bytes_round_trip() {
        let bytes = to_bytes(LeNet5::with_seed(3).network(), ARCH);
        let mut other = LeNet5::with_seed(4);
        load_bytes(other.network_mut(), ARCH, &bytes, "mem").unwrap();
        assert_eq!(
            values(other.network()),
            values(LeNet5::with_seed(3).network())
        );
    }

    #[test]
    fn every_truncation_is_an_error() {
        // a small network, so that every prefix of its file can be tried
        let net = || {
            let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(1);
            Sequential::new([1, 3, 3])
                .add(crate::Conv::new(1, 2, 2, &mut rng).unwrap())
                .unwrap()
        };
        let bytes = to_bytes(&net(), ARCH);
        for len in 0..bytes.len() {
            let err = load_bytes(&mut net(), ARCH, &bytes[..len], "mem");
            assert!(
                matches!(err, Err(Error::Model { .. })),
                "prefix of {len} bytes: {err:?}"
            );
        }
        load_bytes(&mut net(), ARCH, &bytes, "mem").unwrap();
    }

    #[test]
    fn a_failed_save_leaves_the_previous_file_and_no_temporary() {
        let dir = std::env::temp_dir().join(format!("lenet5-io-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("model.bin");
        save(LeNet5::with_seed(1).network(), ARCH, &path).unwrap();
        let before = std::fs::read(&path).unwrap();
        let bytes = to_bytes(LeNet5::with_seed(2).network(), ARCH);
        // the disk fills up half-way through the new file
        let err = write_atomic_with(&path, |file| {
            file.write_all(&bytes[..bytes.len() / 2])?;
            Err(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                "disk full",
            ))
        });
        assert!(matches!(err, Err(Error::Io { .. })));
        assert_eq!(std::fs::read(&path).unwrap(), before);
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec!["model.bin"]);
        // and a save that succeeds replaces it
        save(LeNet5::with_seed(2).network(), ARCH, &path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn damaged_bytes_are_errors_and_leave_the_network_alone() {
        let good = to_bytes(LeNet5::with_seed(3).network(), ARCH);
        let mut net = LeNet5::with_seed(4);
        let before = values(net.network());
        let mut flipped_header = good.clone();
        flipped_header[9] ^= 1; // version
        let mut flipped_weight = good.clone();
        let last = flipped_weight.len() - 1;
        flipped_weight[last] ^= 0x40;
        let other_arch = to_bytes(LeNet5::with_seed(3).network(), "other");
        for (bytes, word) in [
            (&good[..0], "too short"),
            (&good[..good.len() - 1], "truncated"),
            (&flipped_header[..], "version"),
            (&flipped_weight[..], "checksum"),
            (&other_arch[..], "\"other\""),
        ] {
            let err = load_bytes(net.network_mut(), ARCH, bytes, "mem")
                .unwrap_err()
                .to_string();
            assert!(err.contains(word), "{err} should mention {word}");
        }
        assert_eq!(values(net.network()), before);
    }
}
