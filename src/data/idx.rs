//! The IDX file format of MNIST: a 4-byte magic number `[0, 0, type, dims]`, `dims` big-endian
//! `u32` sizes, then the values. Only unsigned bytes (type `0x08`) are read. Files may be gzipped.

use std::io::Read;
use std::path::Path;

use crate::{Error, Result};

/// The largest decompressed IDX file read, 1 GiB: MNIST's largest is 47 MB. Bounds the memory
/// a corrupt or hostile gzip stream can make the reader take.
pub const MAX_IDX_BYTES: u64 = 1 << 30;

/// The IDX type code of unsigned bytes.
const UBYTE: u8 = 0x08;

/// A decoded IDX array of unsigned bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idx {
    /// The sizes from the header, outermost first (`[60000, 28, 28]` for MNIST's training images).
    pub dims: Vec<usize>,
    /// The values, row-major; `data.len()` is the product of `dims`.
    pub data: Vec<u8>,
}

impl Idx {
    /// Reads an IDX file, raw or gzipped (recognised by its first two bytes, `1f 8b`).
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read; [`Error::Idx`] when it is not a valid
    /// unsigned-byte IDX file, its gzip stream is corrupt, or it decompresses to more than
    /// [`MAX_IDX_BYTES`].
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let io_error = |source| Error::Io {
            path: path.into(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io_error)?;
        if file.metadata().map_err(io_error)?.is_dir() {
            return Err(Error::Idx {
                path: path.into(),
                reason: "is a directory, not an IDX file".into(),
            });
        }
        let mut raw = Vec::new();
        file.take(MAX_IDX_BYTES + 1)
            .read_to_end(&mut raw)
            .map_err(io_error)?;
        let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
            let mut bytes = Vec::new();
            flate2::read::MultiGzDecoder::new(raw.as_slice())
                .take(MAX_IDX_BYTES + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| Error::Idx {
                    path: path.into(),
                    reason: format!("corrupt gzip stream: {e}"),
                })?;
            bytes
        } else {
            raw
        };
        if bytes.len() as u64 > MAX_IDX_BYTES {
            return Err(Error::Idx {
                path: path.into(),
                reason: format!("larger than {MAX_IDX_BYTES} bytes"),
            });
        }
        Self::parse(&bytes).map_err(|reason| Error::Idx {
            path: path.into(),
            reason,
        })
    }

    /// Decodes the bytes of an (uncompressed) IDX file; the error says what is wrong.
    ///
    /// # Errors
    /// A description of the first problem found: bad magic number, a type other than unsigned
    /// bytes, a header or body shorter than it claims, or bytes after the body.
    pub fn parse(bytes: &[u8]) -> std::result::Result<Self, String> {
        let Some((magic, rest)) = bytes.split_first_chunk::<4>() else {
            return Err(format!(
                "{} bytes is too short for an IDX header",
                bytes.len()
            ));
        };
        let [0, 0, kind, ndims] = *magic else {
            return Err(format!(
                "bad magic number {magic:02x?}: an IDX file starts with 00 00"
            ));
        };
        if kind != UBYTE {
            return Err(format!(
                "value type 0x{kind:02x} is not supported, only unsigned bytes (0x08)"
            ));
        }
        let header_len = 4 * usize::from(ndims);
        if rest.len() < header_len {
            return Err(format!(
                "header claims {ndims} dimensions but the file ends after {} bytes",
                bytes.len()
            ));
        }
        let (header, body) = rest.split_at(header_len);
        let dims: Vec<usize> = header
            .chunks_exact(4)
            .map(|d| u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize)
            .collect();
        // checked: a hostile header can claim dimensions whose product overflows
        let len = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
        match len {
            Some(len) if len == body.len() => Ok(Idx {
                dims,
                data: body.to_vec(),
            }),
            Some(len) if len > body.len() => Err(format!(
                "header {dims:?} needs {len} bytes of data but the file has {} (truncated)",
                body.len()
            )),
            Some(len) => Err(format!(
                "header {dims:?} needs {len} bytes of data but the file has {} more",
                body.len() - len
            )),
            None => Err(format!("header dimensions {dims:?} overflow")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0, 0, UBYTE, dims.len() as u8];
        dims.iter().for_each(|d| bytes.extend(d.to_be_bytes()));
        bytes.extend(data);
        bytes
    }

    #[test]
    fn parses_a_small_file() {
        let parsed = Idx::parse(&idx(&[2, 3], &[1, 2, 3, 4, 5, 6])).unwrap();
        assert_eq!(
            parsed,
            Idx {
                dims: vec![2, 3],
                data: vec![1, 2, 3, 4, 5, 6]
            }
        );
    }

    #[test]
    fn bad_files_are_errors_that_say_why() {
        // (bytes, a word the message must contain)
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![], "too short"),
            (vec![0, 0, 8], "too short"),
            (vec![1, 0, 8, 1, 0, 0, 0, 0], "magic"),
            (vec![0, 0, 0x0d, 1, 0, 0, 0, 0], "0x0d"),
            (vec![0, 0, 8, 3, 0, 0, 0, 1], "header claims 3"),
            (idx(&[2, 3], &[1, 2, 3]), "truncated"),
            (idx(&[2], &[1, 2, 3]), "1 more"),
            (idx(&[u32::MAX, u32::MAX, u32::MAX], &[]), "overflow"),
        ];
        for (bytes, word) in cases {
            let err = Idx::parse(&bytes).unwrap_err();
            assert!(
                err.contains(word),
                "{bytes:?}: {err:?} should mention {word:?}"
            );
        }
    }

    #[test]
    fn reads_raw_and_gzipped_files_and_names_bad_ones() {
        use std::io::Write;
        let dir = std::env::temp_dir().join(format!("lenet5-idx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bytes = idx(&[4], &[9, 8, 7, 6]);
        std::fs::write(dir.join("raw"), &bytes).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&bytes).unwrap();
        let gz = gz.finish().unwrap();
        std::fs::write(dir.join("file.gz"), &gz).unwrap();
        std::fs::write(dir.join("corrupt.gz"), &gz[..gz.len() / 2]).unwrap();
        assert_eq!(Idx::read(dir.join("raw")).unwrap().data, vec![9, 8, 7, 6]);
        assert_eq!(
            Idx::read(dir.join("file.gz")).unwrap().data,
            vec![9, 8, 7, 6]
        );
        let err = Idx::read(dir.join("corrupt.gz")).unwrap_err().to_string();
        assert!(err.contains("corrupt.gz") && err.contains("gzip"), "{err}");
        assert!(matches!(
            Idx::read(dir.join("missing")),
            Err(Error::Io { .. })
        ));
        assert!(matches!(
            Idx::read(&dir),
            Err(Error::Idx { .. }) | Err(Error::Io { .. })
        ));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
