//! Files: the model format, atomic writes and bounded reads.
//!
//! A model file is
//!
//! | bytes | content |
//! |---|---|
//! | 8 | magic `LENET5\0M` |
//! | 4 | format version, little-endian `u32` (now 3; 1 and 2 are still read) |
//! | 8 | payload length, little-endian `u64` |
//! | 4 | CRC-32 of the payload, little-endian `u32` |
//! | n | payload: bincode 2 (standard config) of the architecture name, the input shape and each layer's [`LayerConfig`] (since version 2), the input [`Encoding`] (since version 3), and every parameter's name, shape and values |
//!
//! Loading checks every field and returns [`Error::Model`] for a truncated, corrupted,
//! other-version or other-architecture file, for a file whose layers differ from the network's
//! in kind, size, activation or fixed values (since version 2) or in input encoding (since
//! version 3), and for NaN or infinite values. Version 1 files carry no layer configs: they
//! load into any network with the same architecture name and parameter shapes. A file of
//! version 2 or 3 holds all it takes to rebuild a stack of this crate's layers
//! ([`stack_from_bytes`], `Sequential::load`); a version 2 file's stack takes the encoding of
//! the preset it names, else [`Encoding::Binary`].
//!
//! # Saving
//! [`write_atomic`] writes a temporary file with a name of its own beside the target (so saves
//! running at once, in threads or processes, never share one), flushes it to disk, gives it the
//! permissions of the file it replaces, and renames it over the target. At every moment the
//! path holds one whole file, the old or a new one; when saves to one path race, the last
//! rename wins, and each `Ok` means that save's bytes were renamed into place. A failed save
//! removes its own temporary file and nothing else.
//!
//! A symbolic link at the path is followed: the file it points to is replaced and the link
//! stays. A hard link is not: the path gets a new file, and the other names of the old file
//! keep the old contents.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::layer::LayerConfig;
use crate::{Encoding, Error, Preset, Result, Sequential};

/// The first bytes of every model file.
pub const MAGIC: [u8; 8] = *b"LENET5\0M";
/// The format version this crate writes.
pub const VERSION: u32 = 3;
/// Magic, version, payload length and checksum.
const HEADER_LEN: usize = 8 + 4 + 8 + 4;
/// The largest payload read, 64 MiB (LeNet-5's is 250 kB): a corrupt length cannot make
/// loading allocate without bound.
pub const MAX_PAYLOAD: usize = 64 << 20;
/// The largest model file read.
pub const MAX_MODEL_FILE: u64 = (HEADER_LEN + MAX_PAYLOAD) as u64;

/// The payload of a version 3 file.
#[derive(Serialize, Deserialize)]
struct Payload {
    architecture: String,
    /// `[C, H, W]` of one input.
    input_shape: [usize; 3],
    encoding: Encoding,
    layers: Vec<LayerConfig>,
    params: Vec<Tensor>,
}

/// The payload of a version 2 file: no encoding.
#[derive(Deserialize)]
struct PayloadV2 {
    architecture: String,
    input_shape: [usize; 3],
    layers: Vec<LayerConfig>,
    params: Vec<Tensor>,
}

/// The payload of a version 1 file: no layer configs.
#[derive(Deserialize)]
struct PayloadV1 {
    architecture: String,
    params: Vec<Tensor>,
}

#[derive(Serialize, Deserialize)]
struct Tensor {
    name: String,
    shape: Vec<usize>,
    values: Vec<f32>,
}

/// Every parameter of `net` with its name and shape.
fn tensors_of(net: &Sequential) -> Vec<Tensor> {
    net.named_params()
        .into_iter()
        .map(|(name, p)| Tensor {
            name,
            shape: p.shape.to_vec(),
            values: p.value.to_vec(),
        })
        .collect()
}

/// The model file bytes of `net`: its layers' configs and parameters, tagged with `architecture`.
pub fn to_bytes(net: &Sequential, architecture: &str) -> Vec<u8> {
    let params = tensors_of(net);
    let payload = Payload {
        architecture: architecture.into(),
        input_shape: net.input_shape(),
        encoding: net.encoding(),
        layers: net.configs(),
        params,
    };
    frame(VERSION, &payload)
}

/// A model file: the header for `version` and the bincode encoding of `payload`.
fn frame(version: u32, payload: &impl Serialize) -> Vec<u8> {
    frame_as(MAGIC, version, payload)
}

/// A file of the crate's framing: `magic`, `version`, the payload's length and CRC-32, then
/// the bincode encoding of `payload`.
pub(crate) fn frame_as(magic: [u8; 8], version: u32, payload: &impl Serialize) -> Vec<u8> {
    let payload = bincode::serde::encode_to_vec(payload, bincode::config::standard())
        .expect("encoding to memory cannot fail");
    let mut bytes = Vec::with_capacity(HEADER_LEN + payload.len());
    bytes.extend(magic);
    bytes.extend(version.to_le_bytes());
    bytes.extend((payload.len() as u64).to_le_bytes());
    bytes.extend(crc32fast::hash(&payload).to_le_bytes());
    bytes.extend(payload);
    bytes
}

/// Loads the parameters in `bytes` into `net`, which must have the same `architecture`,
/// layers (version 2) and parameter shapes. `source_name` names the bytes in errors. `net` is
/// changed only on success.
///
/// # Errors
/// [`Error::Model`] saying what is wrong: bad magic, another version, a length or checksum
/// that does not match, an undecodable payload, another architecture, a layer whose kind,
/// sizes, activation or fixed values differ from `net`'s, a parameter whose name or shape
/// differs, or a value that is NaN or infinite.
pub fn load_bytes(
    net: &mut Sequential,
    architecture: &str,
    bytes: &[u8],
    source_name: &str,
) -> Result<()> {
    let decoded = decode(bytes, source_name)?;
    if decoded.architecture != architecture {
        return Err(model_error(
            source_name,
            format!(
                "a {:?} model, expected {architecture:?}",
                decoded.architecture
            ),
        ));
    }
    apply(net, decoded, source_name)
}

/// Loads the parameters in `bytes` into `net`, whatever architecture name the file carries:
/// its layers (version 2) and parameters must be `net`'s. `net` is changed only on success.
///
/// # Errors
/// As [`load_bytes`], but for the architecture name; [`Error::Model`] also when the file's
/// input shape differs.
pub fn load_weights_bytes(net: &mut Sequential, bytes: &[u8], source_name: &str) -> Result<()> {
    apply(net, decode(bytes, source_name)?, source_name)
}

/// The stack saved in `bytes` (version 2), rebuilt from its layer configs, with its weights.
///
/// # Errors
/// As [`load_bytes`], and [`Error::Model`] for a version 1 file (it records no layers), a
/// layer that is not one of this crate's ([`LayerConfig::Other`]) or that cannot be built, or
/// layers that do not hold the values the file carries.
pub fn stack_from_bytes(bytes: &[u8], source_name: &str) -> Result<Sequential> {
    let bad = |reason| model_error(source_name, reason);
    let decoded = decode(bytes, source_name)?;
    let (Some(input_shape), Some(layers)) = (decoded.input_shape, &decoded.layers) else {
        return Err(bad(
            "a version 1 file records no layers: build the network, then load its weights".into(),
        ));
    };
    if let Some((i, config)) = layers
        .iter()
        .enumerate()
        .find(|(_, l)| matches!(l, LayerConfig::Other { .. }))
    {
        return Err(bad(format!(
            "layer {i} ({config}) is not one of this crate's layers: build the stack, then load its weights"
        )));
    }
    // checked before anything is allocated: the layers must hold just the values in the file
    let implied = layers.iter().try_fold(0usize, |sum, l| {
        sum.checked_add(crate::layers::param_values(l)?)
    });
    let held: usize = decoded.params.iter().map(|t| t.values.len()).sum();
    if implied != Some(held) {
        return Err(bad(format!(
            "its layers hold {} values, the file {held}",
            implied.map_or("more than usize::MAX".into(), |n| n.to_string())
        )));
    }
    let encoding = decoded.encoding.unwrap_or_else(|| {
        Preset::from_architecture(&decoded.architecture)
            .map_or_else(Encoding::default, Preset::encoding)
    });
    let mut net = Sequential::new(input_shape).with_encoding(encoding);
    for (i, config) in layers.iter().enumerate() {
        let layer = crate::layers::from_config(config)
            .and_then(|layer| net.push(layer))
            .map_err(|e| bad(format!("layer {i} ({config}): {e}")));
        layer?;
    }
    apply(&mut net, decoded, source_name)?;
    Ok(net)
}

/// Checks `decoded` against `net` (input shape and layers where the file records them, then
/// every parameter) and copies its values in.
fn apply(net: &mut Sequential, decoded: Decoded, source_name: &str) -> Result<()> {
    let bad = |reason| model_error(source_name, reason);
    if let Some(shape) = decoded.input_shape
        && shape != net.input_shape()
    {
        return Err(bad(format!(
            "inputs are {shape:?} in the file, {:?} in the network",
            net.input_shape()
        )));
    }
    if let Some(encoding) = decoded.encoding
        && encoding != net.encoding()
    {
        return Err(bad(format!(
            "inputs are encoded as {encoding:?} in the file, {:?} in the network",
            net.encoding()
        )));
    }
    if let Some(layers) = &decoded.layers {
        check_layers(&net.configs(), layers).map_err(bad)?;
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
pub(crate) fn model_error(source_name: &str, reason: String) -> Error {
    Error::Model {
        source_name: source_name.into(),
        reason,
    }
}

/// A decoded payload of any version; `input_shape` and `layers` are `None` for version 1,
/// `encoding` before version 3.
struct Decoded {
    architecture: String,
    input_shape: Option<[usize; 3]>,
    encoding: Option<Encoding>,
    layers: Option<Vec<LayerConfig>>,
    params: Vec<Tensor>,
}

/// The version and payload of `bytes`, a file of the crate's framing with `magic` and a
/// version from 1 to `latest`, after checking its header and checksum; `what` names the kind
/// of file in errors.
///
/// # Errors
/// [`Error::Model`] for a short file, another magic or version, or a length or checksum that
/// does not match.
pub(crate) fn unframe<'a>(
    bytes: &'a [u8],
    magic: [u8; 8],
    latest: u32,
    what: &str,
    source_name: &str,
) -> Result<(u32, &'a [u8])> {
    let bad = |reason| model_error(source_name, reason);
    let Some((header, payload)) = bytes.split_first_chunk::<HEADER_LEN>() else {
        return Err(bad(format!(
            "{} bytes is too short for {what}",
            bytes.len()
        )));
    };
    let field = |range: std::ops::Range<usize>| &header[range];
    if field(0..8) != magic {
        return Err(bad(format!("not {what} (bad magic)")));
    }
    let version = u32::from_le_bytes(field(8..12).try_into().expect("4 bytes"));
    if !(1..=latest).contains(&version) {
        return Err(bad(format!(
            "format version {version} is not supported (this crate reads 1 to {latest})"
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
    Ok((version, payload))
}

/// The payload of the model file `bytes`, after checking its header and checksum.
fn decode(bytes: &[u8], source_name: &str) -> Result<Decoded> {
    let bad = |reason| model_error(source_name, reason);
    let (version, payload) = unframe(bytes, MAGIC, VERSION, "a lenet5 model file", source_name)?;
    Ok(match version {
        1 => {
            let v1: PayloadV1 = decode_payload(payload).map_err(bad)?;
            Decoded {
                architecture: v1.architecture,
                input_shape: None,
                encoding: None,
                layers: None,
                params: v1.params,
            }
        }
        2 => {
            let v2: PayloadV2 = decode_payload(payload).map_err(bad)?;
            Decoded {
                architecture: v2.architecture,
                input_shape: Some(v2.input_shape),
                encoding: None,
                layers: Some(v2.layers),
                params: v2.params,
            }
        }
        _ => {
            let v3: Payload = decode_payload(payload).map_err(bad)?;
            Decoded {
                architecture: v3.architecture,
                input_shape: Some(v3.input_shape),
                encoding: Some(v3.encoding),
                layers: Some(v3.layers),
                params: v3.params,
            }
        }
    })
}

/// `T` decoded from the whole of `payload`, with a size limit.
pub(crate) fn decode_payload<T: serde::de::DeserializeOwned>(
    payload: &[u8],
) -> std::result::Result<T, String> {
    let config = bincode::config::standard().with_limit::<MAX_PAYLOAD>();
    match bincode::serde::decode_from_slice(payload, config) {
        Ok((decoded, used)) if used == payload.len() => Ok(decoded),
        Ok((_, used)) => Err(format!("{} bytes after the payload", payload.len() - used)),
        Err(e) => Err(format!("undecodable payload: {e}")),
    }
}

/// That the file's layers `saved` are the network's `layers`, one for one.
fn check_layers(layers: &[LayerConfig], saved: &[LayerConfig]) -> std::result::Result<(), String> {
    if let Some(i) = (0..layers.len().min(saved.len())).find(|&i| layers[i] != saved[i]) {
        let (file, net) = (&saved[i], &layers[i]);
        let fixed = if file.to_string() == net.to_string() {
            " (their fixed values or connection tables differ)"
        } else {
            ""
        };
        return Err(format!(
            "layer {i} is {file} in the file, {net} in the network{fixed}"
        ));
    }
    if layers.len() != saved.len() {
        return Err(format!(
            "the file has {} layers, the network {}",
            saved.len(),
            layers.len()
        ));
    }
    Ok(())
}

/// That `tensors` match `net`'s parameters one for one, in name, shape and length, and hold
/// only finite values.
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
        check_finite(&t.name, &t.values)?;
    }
    Ok(())
}

/// That every value of the parameter `name` is finite.
pub(crate) fn check_finite(name: &str, values: &[f32]) -> std::result::Result<(), String> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(format!(
            "parameter {name:?} holds {} at index {i}",
            values[i]
        )),
        None => Ok(()),
    }
}

/// Saves `net`'s layers and parameters to `path` atomically (see [Saving](self#saving)).
///
/// # Errors
/// [`Error::Io`] naming the file when writing or renaming fails; the temporary file is removed
/// and a previous file at `path` is left as it was.
pub fn save(net: &Sequential, architecture: &str, path: impl AsRef<Path>) -> Result<()> {
    write_atomic(path.as_ref(), &to_bytes(net, architecture))
}

/// Writes `bytes` to `path` through a temporary file of its own and a rename (see
/// [Saving](self#saving)).
///
/// # Errors
/// [`Error::Io`] naming `path` when any step fails; the temporary file is then removed and
/// `path` is left as it was.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |file| file.write_all(bytes))
}

/// Checks that a file can be created in the directory of `path` (and that `path` is not a
/// directory), by creating and removing a temporary file there: a long run calls it before
/// it starts, so that its result is not lost at the end.
///
/// # Errors
/// [`Error::Io`] naming `path` when the directory is missing or not writable, or `path` is a
/// directory.
pub fn check_writable(path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let target = resolve(path).map_err(|source| io_error(path, source))?;
    if target.is_dir() {
        return Err(io_error(
            path,
            std::io::Error::new(std::io::ErrorKind::IsADirectory, "is a directory"),
        ));
    }
    let (tmp, file) = create_temporary(&target).map_err(|source| io_error(path, source))?;
    drop(file);
    std::fs::remove_file(&tmp).map_err(|source| io_error(path, source))
}

fn io_error(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.into(),
        source,
    }
}

/// Runs `write` on a temporary file beside `path` (beside the file a symlink at `path` points
/// to), then flushes it, gives it the old file's permissions and renames it into place. On
/// any error the temporary file is removed and `path` is left as it was.
fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> Result<()> {
    let target = resolve(path).map_err(|source| io_error(path, source))?;
    let (tmp, mut file) = create_temporary(&target).map_err(|source| io_error(path, source))?;
    let result = (|| {
        if let Ok(old) = std::fs::metadata(&target) {
            file.set_permissions(old.permissions())?;
        }
        write(&mut file)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, &target)?;
        sync_dir(&target);
        Ok(())
    })();
    result.map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        io_error(path, source)
    })
}

/// `path`, or the file it points to when it is a symbolic link (even a dangling one).
fn resolve(path: &Path) -> std::io::Result<PathBuf> {
    let mut target = path.to_path_buf();
    // a bounded walk: a cycle of links ends in an error, not a loop
    for _ in 0..40 {
        match std::fs::symlink_metadata(&target) {
            Ok(m) if m.file_type().is_symlink() => {
                let link = std::fs::read_link(&target)?;
                target = match target.parent() {
                    Some(dir) => dir.join(link),
                    None => link,
                };
            }
            _ => return Ok(target),
        }
    }
    Err(std::io::Error::other("too many levels of symbolic links"))
}

/// Saves in flight in this process, so that two threads never pick the same temporary name.
static SAVES: AtomicU64 = AtomicU64::new(0);

/// A new file `.NAME.PID-N.tmp` beside `target`, created exclusively.
fn create_temporary(target: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    loop {
        let n = SAVES.fetch_add(1, Ordering::Relaxed);
        let tmp = target.with_file_name(format!(".{name}.{}-{n}.tmp", std::process::id()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
        {
            Ok(file) => return Ok((tmp, file)),
            // left by a process that had this pid before: take the next number
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Flushes the directory entry of a rename to disk, where the platform allows it.
fn sync_dir(target: &Path) {
    if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(dir) = std::fs::File::open(dir)
    {
        let _ = dir.sync_all();
    }
}

/// Loads layers and parameters saved by [`save`] into `net`.
///
/// # Errors
/// [`Error::Io`] when the file cannot be read, [`Error::TooLarge`] for a file larger than
/// [`MAX_MODEL_FILE`], and the errors of [`load_bytes`].
pub fn load(net: &mut Sequential, architecture: &str, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    load_bytes(net, architecture, &read(path)?, &path.display().to_string())
}

/// The bytes of the model file `path`, refusing more than a model file can hold.
///
/// # Errors
/// [`Error::Io`] when it cannot be read, [`Error::TooLarge`] when it is too large.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>> {
    read_limited(path, MAX_MODEL_FILE, "a model file")
}

/// The bytes of `path`, reading at most `limit + 1` of them: [`Error::TooLarge`] when it holds
/// more than `limit` (a device such as `/dev/zero` included).
///
/// # Errors
/// [`Error::Io`] when it cannot be read, [`Error::TooLarge`] when it is too large.
pub fn read_limited(path: &Path, limit: u64, what: &'static str) -> Result<Vec<u8>> {
    let mut file = std::fs::File::open(path).map_err(|source| io_error(path, source))?;
    let mut bytes = Vec::new();
    if let Ok(m) = file.metadata() {
        if m.is_dir() {
            return Err(io_error(
                path,
                std::io::Error::new(std::io::ErrorKind::IsADirectory, "is a directory"),
            ));
        }
        if m.len() > limit {
            return Err(Error::TooLarge {
                path: path.into(),
                what,
                limit,
            });
        }
        bytes.reserve_exact(m.len() as usize);
    }
    (&mut file)
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| io_error(path, source))?;
    if bytes.len() as u64 > limit {
        return Err(Error::TooLarge {
            path: path.into(),
            what,
            limit,
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::temp_dir;
    use crate::{Layer, LeNet5};
    use rand::SeedableRng;

    const ARCH: &str = "test";

    fn values(net: &Sequential) -> Vec<f32> {
        net.params().iter().flat_map(|p| p.value.to_vec()).collect()
    }

    #[test]
    fn layer_kinds_keep_their_positions_in_files() {
        // files store a LayerConfig's variant by its position: older files must still read
        let kinds = [
            (LayerConfig::MaxPool { kernel: 2 }, 4),
            (LayerConfig::Other { name: "x".into() }, 5),
            (
                LayerConfig::Activation {
                    activation: crate::Activation::Relu,
                },
                6,
            ),
            (LayerConfig::Flatten, 7),
            (LayerConfig::Dropout { rate: 0.5, seed: 1 }, 8),
        ];
        for (config, position) in kinds {
            let bytes =
                bincode::serde::encode_to_vec(&config, bincode::config::standard()).unwrap();
            assert_eq!(bytes[0], position, "{config}");
        }
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
        let dir = temp_dir("io-failed");
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

    fn file_names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// The stack of [`small`]'s layers for 2 maps, sigmoid, with every weight zero.
    fn zeroed() -> Sequential {
        let conv = crate::Conv::from_params(
            ndarray::Array4::zeros((2, 1, 3, 3)),
            ndarray::Array1::zeros(2),
        );
        Sequential::new([1, 4, 4]).add(conv.unwrap()).unwrap()
    }

    /// A small stack of `maps` output maps, so that stacks of other sizes write files of other
    /// lengths.
    fn small(maps: usize, activation: crate::Activation) -> Sequential {
        let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(maps as u64);
        Sequential::new([1, 4, 4])
            .add(
                crate::Conv::new(1, maps, 3, &mut rng)
                    .unwrap()
                    .with_activation(activation),
            )
            .unwrap()
    }

    #[test]
    fn concurrent_saves_to_one_path_each_leave_a_whole_model() {
        let dir = temp_dir("io-concurrent");
        let path = dir.join("model.bin");
        let nets: Vec<Sequential> = (1..=6)
            .map(|maps| small(maps, crate::Activation::Sigmoid))
            .collect();
        let files: Vec<Vec<u8>> = nets.iter().map(|n| to_bytes(n, ARCH)).collect();
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            // a reader that must only ever see one whole model file, or none yet
            let reader = scope.spawn(|| {
                let mut seen = 0;
                while !done.load(Ordering::Relaxed) {
                    if let Ok(bytes) = std::fs::read(&path) {
                        assert!(files.contains(&bytes), "a partial or mixed file");
                        seen += 1;
                    }
                }
                seen
            });
            let savers: Vec<_> = nets
                .iter()
                .map(|net| {
                    scope.spawn(|| {
                        for _ in 0..30 {
                            save(net, ARCH, &path).unwrap();
                        }
                    })
                })
                .collect();
            savers.into_iter().for_each(|s| s.join().unwrap());
            done.store(true, Ordering::Relaxed);
            assert!(reader.join().unwrap() > 0);
        });
        assert!(files.contains(&std::fs::read(&path).unwrap()));
        assert_eq!(file_names(&dir), ["model.bin"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn saving_keeps_permissions_and_follows_symlinks() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp_dir("io-links");
        let (real, link) = (dir.join("real.bin"), dir.join("link.bin"));
        let net = small(2, crate::Activation::Sigmoid);
        save(&net, ARCH, &real).unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::symlink("real.bin", &link).unwrap();
        let other = small(3, crate::Activation::Sigmoid);
        save(&other, ARCH, &link).unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read(&real).unwrap(), to_bytes(&other, ARCH));
        let mode = std::fs::metadata(&real).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // a hard link keeps the old contents under its other name
        let hard = dir.join("hard.bin");
        std::fs::hard_link(&real, &hard).unwrap();
        save(&net, ARCH, &real).unwrap();
        assert_eq!(std::fs::read(&hard).unwrap(), to_bytes(&other, ARCH));
        assert_eq!(std::fs::read(&real).unwrap(), to_bytes(&net, ARCH));
        assert_eq!(file_names(&dir), ["hard.bin", "link.bin", "real.bin"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn check_writable_refuses_missing_directories_and_directories() {
        let dir = temp_dir("io-writable");
        check_writable(dir.join("model.bin")).unwrap();
        assert!(file_names(&dir).is_empty());
        for bad in [dir.join("missing/model.bin"), dir.clone()] {
            assert!(
                matches!(check_writable(&bad), Err(Error::Io { .. })),
                "{bad:?}"
            );
        }
        assert!(!dir.join("missing").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn weights_load_only_into_the_layers_they_were_saved_from() {
        let bytes = to_bytes(&small(2, crate::Activation::Sigmoid), ARCH);
        let mut relu = small(2, crate::Activation::Relu);
        let err = load_bytes(&mut relu, ARCH, &bytes, "mem")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("layer 0 is Conv 1->2 3x3 Sigmoid in the file, Conv 1->2 3x3 Relu"),
            "{err}"
        );
        let table = ndarray::array![[true], [true]]; // the same sums, but a table
        let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(2);
        let conv = crate::Conv::new(1, 2, 3, &mut rng).unwrap();
        let mut masked = Sequential::new([1, 4, 4])
            .add(conv.with_connections(table).unwrap())
            .unwrap();
        let err = load_bytes(&mut masked, ARCH, &bytes, "mem")
            .unwrap_err()
            .to_string();
        assert!(err.contains("connection table"), "{err}");
    }

    #[test]
    fn non_finite_values_are_refused() {
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut net = small(2, crate::Activation::Sigmoid);
            net.named_params_mut()[1].1.value[1] = bad;
            let bytes = to_bytes(&net, ARCH);
            let mut target = small(2, crate::Activation::Sigmoid);
            let before = values(&target);
            let err = load_bytes(&mut target, ARCH, &bytes, "mem")
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("\"layers.0.bias\" holds {bad} at index 1")),
                "{err}"
            );
            assert_eq!(values(&target), before);
        }
    }

    #[test]
    fn version_1_files_still_load() {
        #[derive(Serialize)]
        struct V1<'a> {
            architecture: &'a str,
            params: Vec<Tensor>,
        }
        let net = small(2, crate::Activation::Sigmoid);
        let params = tensors_of(&net);
        let v1 = V1 {
            architecture: ARCH,
            params,
        };
        let bytes = frame(1, &v1);
        let mut other = small(2, crate::Activation::Relu);
        load_bytes(&mut other, ARCH, &bytes, "mem").unwrap();
        assert_eq!(values(&other), values(&net));
        // without configs, the parameters' shapes are what is checked: same name and length,
        // another shape
        let mut params = tensors_of(&net);
        params[0].shape = vec![1, 2, 3, 3];
        let v1 = V1 {
            architecture: ARCH,
            params,
        };
        let err = load_bytes(&mut other, ARCH, &frame(1, &v1), "mem")
            .unwrap_err()
            .to_string();
        assert!(err.contains("[1, 2, 3, 3]"), "{err}");
    }

    #[test]
    fn version_2_files_still_load_with_their_presets_encoding() {
        #[derive(Serialize)]
        struct V2 {
            architecture: String,
            input_shape: [usize; 3],
            layers: Vec<LayerConfig>,
            params: Vec<Tensor>,
        }
        let net = LeNet5::lecun1998();
        let v2 = V2 {
            architecture: crate::Preset::LeCun1998.architecture().into(),
            input_shape: net.input_shape(),
            layers: net.configs(),
            params: tensors_of(&net),
        };
        let bytes = frame(2, &v2);
        let stack = stack_from_bytes(&bytes, "mem").unwrap();
        assert_eq!(stack.encoding(), crate::Preset::LeCun1998.encoding());
        let mut into = LeNet5::lecun1998();
        load_bytes(&mut into, "lenet5-lecun1998", &bytes, "mem").unwrap();
    }

    #[test]
    fn weights_load_only_into_a_network_of_the_same_encoding() {
        let net = small(2, crate::Activation::Sigmoid);
        let bytes = to_bytes(&net, ARCH);
        assert_eq!(
            stack_from_bytes(&bytes, "mem").unwrap().encoding(),
            Encoding::Binary
        );
        let linear = Encoding::Linear {
            background: -0.1,
            ink: 1.175,
        };
        let mut other = small(2, crate::Activation::Sigmoid).with_encoding(linear);
        let err = load_weights_bytes(&mut other, &bytes, "mem")
            .unwrap_err()
            .to_string();
        assert!(err.contains("encoded as Binary in the file"), "{err}");
        let bytes = to_bytes(&other, ARCH);
        assert_eq!(stack_from_bytes(&bytes, "mem").unwrap().encoding(), linear);
    }

    #[test]
    fn layers_that_differ_only_in_fixed_values_are_told_apart() {
        let stack = |rbf: crate::RbfOutput| Sequential::new([84, 1, 1]).add(rbf).unwrap();
        let bytes = to_bytes(&stack(crate::RbfOutput::digits()), ARCH);
        let err = load_bytes(
            &mut stack(crate::RbfOutput::digits().bipolar()),
            ARCH,
            &bytes,
            "mem",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("layer 0 is RbfOutput 84->10 in the file, RbfOutput 84->10 in the network (their fixed values"),
            "{err}"
        );
        // layers that differ in what the description shows get no such remark
        let bytes = to_bytes(&small(2, crate::Activation::Sigmoid), ARCH);
        let err = load_bytes(&mut small(2, crate::Activation::Relu), ARCH, &bytes, "mem")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("fixed values"), "{err}");
    }

    #[test]
    fn reads_are_bounded() {
        let dir = temp_dir("io-bounded");
        let path = dir.join("big");
        std::fs::write(&path, vec![0u8; 100]).unwrap();
        assert_eq!(read_limited(&path, 100, "a test").unwrap().len(), 100);
        let err = read_limited(&path, 99, "a test").unwrap_err();
        assert!(matches!(err, Error::TooLarge { limit: 99, .. }), "{err}");
        #[cfg(unix)]
        assert!(matches!(
            read_limited(Path::new("/dev/zero"), 1000, "a test"),
            Err(Error::TooLarge { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_parameter_of_another_name_is_refused() {
        let net = small(2, crate::Activation::Sigmoid);
        let mut params = tensors_of(&net);
        params[1].name = "layers.0.offset".into();
        let payload = Payload {
            architecture: ARCH.into(),
            input_shape: net.input_shape(),
            encoding: Encoding::Binary,
            layers: net.configs(),
            params,
        };
        let bytes = frame(VERSION, &payload);
        let err = load_bytes(
            &mut small(2, crate::Activation::Sigmoid),
            ARCH,
            &bytes,
            "mem",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("\"layers.0.offset\""), "{err}");
    }

    #[test]
    fn a_stack_is_rebuilt_only_from_layers_that_hold_the_files_values() {
        let net = small(2, crate::Activation::Relu);
        let rebuilt = stack_from_bytes(&to_bytes(&net, ARCH), "mem").unwrap();
        assert_eq!(rebuilt.configs(), net.configs());
        assert_eq!(values(&rebuilt), values(&net));
        // a config claiming far more values than the file holds is refused before allocating
        for (in_channels, says) in [
            (1 << 40, "19791209299970 values"),
            (usize::MAX, "more than"),
        ] {
            let payload = Payload {
                architecture: ARCH.into(),
                input_shape: [1, 4, 4],
                encoding: Encoding::Binary,
                layers: vec![LayerConfig::Conv {
                    in_channels,
                    out_channels: 2,
                    kernel: 3,
                    activation: crate::Activation::Sigmoid,
                    connections: None,
                }],
                params: Vec::new(),
            };
            let err = stack_from_bytes(&frame(VERSION, &payload), "mem")
                .unwrap_err()
                .to_string();
            assert!(err.contains(says), "{err}");
        }
    }

    #[test]
    fn a_model_file_is_read_up_to_its_bound_and_no_further() {
        // the header and a payload of 64 MiB, the bound the module documents
        assert_eq!(MAX_MODEL_FILE, 24 + (64 << 20));
        let dir = temp_dir("io-bound");
        let path = dir.join("sparse.bin");
        let file = std::fs::File::create(&path).unwrap();
        // a sparse file: no disk, and zeros when read
        file.set_len(MAX_MODEL_FILE + 1).unwrap();
        let err = read(&path).unwrap_err();
        assert!(
            matches!(err, Error::TooLarge { limit, .. } if limit == MAX_MODEL_FILE),
            "{err}"
        );
        file.set_len(MAX_MODEL_FILE).unwrap();
        assert_eq!(read(&path).unwrap().len() as u64, MAX_MODEL_FILE);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn weights_load_whatever_the_architecture_name_and_never_past_the_payload() {
        let saved = small(2, crate::Activation::Sigmoid);
        let bytes = to_bytes(&saved, "someone else's name");
        let mut net = small(3, crate::Activation::Sigmoid);
        assert!(load_weights_bytes(&mut net, &bytes, "mem").is_err()); // 3 maps, not 2
        let mut net = zeroed();
        load_weights_bytes(&mut net, &bytes, "mem").unwrap();
        assert_eq!(values(&net), values(&saved));
        // a valid header and checksum over the payload and bytes after it
        let mut payload = bytes[HEADER_LEN..].to_vec();
        payload.extend([0, 0, 0]);
        let mut padded = MAGIC.to_vec();
        padded.extend(VERSION.to_le_bytes());
        padded.extend((payload.len() as u64).to_le_bytes());
        padded.extend(crc32fast::hash(&payload).to_le_bytes());
        padded.extend(payload);
        let err = load_weights_bytes(&mut net, &padded, "mem")
            .unwrap_err()
            .to_string();
        assert!(err.contains("3 bytes after the payload"), "{err}");
    }

    #[test]
    fn saving_steps_over_temporary_files_left_by_another_process() {
        let dir = temp_dir("io-leftover");
        let path = dir.join("model.bin");
        // the temporary names this process's next saves would take, left by a dead process
        let next = SAVES.load(Ordering::Relaxed);
        let pid = std::process::id();
        for n in next..next + 1000 {
            std::fs::write(dir.join(format!(".model.bin.{pid}-{n}.tmp")), b"left").unwrap();
        }
        let net = small(2, crate::Activation::Sigmoid);
        save(&net, ARCH, &path).unwrap();
        let mut back = small(3, crate::Activation::Sigmoid);
        assert!(load(&mut back, ARCH, &path).is_err()); // other layers
        let mut back = small(2, crate::Activation::Relu);
        assert!(load(&mut back, ARCH, &path).is_err());
        let mut back = zeroed();
        load(&mut back, ARCH, &path).unwrap();
        assert_eq!(values(&back), values(&net));
        // the leftovers are untouched
        assert_eq!(file_names(&dir).len(), 1001);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
