//! The IDX file format of MNIST: a 4-byte magic number `[0, 0, type, dims]`, `dims` big-endian
//! `u32` sizes, then the values. Only unsigned bytes (type `0x08`) are read. Files may be gzipped.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use crate::{Error, Result};

/// The largest IDX body read, 1 GiB: MNIST's largest is 47 MB. A header that claims more is
/// refused before anything is decompressed or allocated for the body.
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
    /// Reads an IDX file, raw or gzipped (recognised by its first two bytes, `1f 8b`), as a
    /// stream: the header first, checked against [`MAX_IDX_BYTES`], then exactly the body it
    /// claims, into one buffer of that size (the file is never held twice).
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read; [`Error::Idx`] when it is not a valid
    /// unsigned-byte IDX file, its gzip stream is corrupt, or its header claims more than
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
        Self::from_reader(BufReader::new(file)).map_err(|reason| Error::Idx {
            path: path.into(),
            reason,
        })
    }

    /// Decodes an IDX stream, raw or gzipped, as [`Idx::read`] does a file; the error says
    /// what is wrong.
    ///
    /// # Errors
    /// As [`Idx::parse`], and a corrupt gzip stream, a read that fails, or a header that
    /// claims more than [`MAX_IDX_BYTES`].
    pub fn from_reader(mut reader: impl BufRead) -> std::result::Result<Self, String> {
        let start = reader
            .fill_buf()
            .map_err(|e| format!("unreadable file: {e}"))?;
        if start.starts_with(&[0x1f, 0x8b]) {
            let gz = flate2::bufread::MultiGzDecoder::new(reader);
            Self::from_stream(CorruptIfShort(gz), "gzip stream")
        } else {
            Self::from_stream(reader, "file")
        }
    }

    /// Decodes an IDX stream; `what` names it in messages about read errors.
    fn from_stream(mut r: impl Read, what: &str) -> std::result::Result<Self, String> {
        let read_error = |e: std::io::Error| format!("corrupt or unreadable {what}: {e}");
        let (dims, len) = header(&mut r).map_err(|e| match e {
            HeaderError::Invalid(reason) => reason,
            HeaderError::Io(e) => read_error(e),
        })?;
        if len as u64 > MAX_IDX_BYTES {
            return Err(format!(
                "header {dims:?} claims {len} bytes of data, more than the limit of {MAX_IDX_BYTES}"
            ));
        }
        let mut data = Vec::new();
        data.try_reserve_exact(len)
            .map_err(|e| format!("cannot hold the {len} bytes header {dims:?} claims: {e}"))?;
        (&mut r)
            .take(len as u64)
            .read_to_end(&mut data)
            .map_err(read_error)?;
        if data.len() < len {
            return Err(format!(
                "header {dims:?} needs {len} bytes of data but the file has {} (truncated)",
                data.len()
            ));
        }
        let mut more = [0u8; 1];
        if r.read(&mut more).map_err(read_error)? > 0 {
            return Err(format!(
                "header {dims:?} needs {len} bytes of data but the file has more"
            ));
        }
        Ok(Idx { dims, data })
    }

    /// Decodes the bytes of an (uncompressed) IDX file; the error says what is wrong.
    ///
    /// # Errors
    /// A description of the first problem found: bad magic number, a type other than unsigned
    /// bytes, a header or body shorter than it claims, or bytes after the body.
    pub fn parse(bytes: &[u8]) -> std::result::Result<Self, String> {
        let mut body = bytes;
        let (dims, len) = header(&mut body).map_err(|e| match e {
            HeaderError::Invalid(reason) => reason,
            HeaderError::Io(_) => format!("{} bytes is too short for an IDX header", bytes.len()),
        })?;
        match len.cmp(&body.len()) {
            std::cmp::Ordering::Equal => Ok(Idx {
                dims,
                data: body.to_vec(),
            }),
            std::cmp::Ordering::Greater => Err(format!(
                "header {dims:?} needs {len} bytes of data but the file has {} (truncated)",
                body.len()
            )),
            std::cmp::Ordering::Less => Err(format!(
                "header {dims:?} needs {len} bytes of data but the file has {} more",
                body.len() - len
            )),
        }
    }
}

/// A decompressor whose early end is a corrupt stream ([`std::io::ErrorKind::InvalidData`]),
/// not the end of the data: a cut gzip file is reported as such, not as a short IDX file.
struct CorruptIfShort<R>(R);

impl<R: Read> Read for CorruptIfShort<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => {
                std::io::Error::new(std::io::ErrorKind::InvalidData, e)
            }
            _ => e,
        })
    }
}

/// Why a header could not be read.
enum HeaderError {
    /// The bytes are there and wrong.
    Invalid(String),
    /// Reading failed (for a slice: it ended).
    Io(std::io::Error),
}

/// The dimensions a header gives, and the body length they make, read from `r`.
fn header(r: &mut impl Read) -> std::result::Result<(Vec<usize>, usize), HeaderError> {
    let short = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => {
            HeaderError::Invalid("the file is too short for an IDX header".into())
        }
        _ => HeaderError::Io(e),
    };
    let mut magic = [0u8; 4];
    r.read_exact(&mut magic).map_err(short)?;
    let [0, 0, kind, ndims] = magic else {
        return Err(HeaderError::Invalid(format!(
            "bad magic number {magic:02x?}: an IDX file starts with 00 00"
        )));
    };
    if kind != UBYTE {
        return Err(HeaderError::Invalid(format!(
            "value type 0x{kind:02x} is not supported, only unsigned bytes (0x08)"
        )));
    }
    let mut sizes = vec![0u8; 4 * usize::from(ndims)];
    r.read_exact(&mut sizes).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => HeaderError::Invalid(format!(
            "header claims {ndims} dimensions but the file ends before them"
        )),
        _ => HeaderError::Io(e),
    })?;
    let dims: Vec<usize> = sizes
        .chunks_exact(4)
        .map(|d| u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize)
        .collect();
    // checked: a hostile header can claim dimensions whose product overflows
    match crate::layer::product(&dims) {
        Some(len) => Ok((dims, len)),
        None => Err(HeaderError::Invalid(format!(
            "header dimensions {dims:?} overflow"
        ))),
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
            (idx(&[u32::MAX, u32::MAX], &[]), "truncated"),
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

    #[test]
    fn a_header_claiming_too_much_is_refused_before_the_body_is_read() {
        use std::io::Write;
        let dir = std::env::temp_dir().join(format!("lenet5-idx-claim-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // 13 million 28x28 images claimed, 1 MB of zeros present
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&idx(&[13_000_000, 28, 28], &[])).unwrap();
        gz.write_all(&vec![0u8; 1 << 20]).unwrap();
        std::fs::write(dir.join("claims.gz"), gz.finish().unwrap()).unwrap();
        let err = Idx::read(dir.join("claims.gz")).unwrap_err().to_string();
        assert!(
            err.contains("claims 10192000000 bytes") && err.contains("limit"),
            "{err}"
        );
        // a raw file with bytes after its body
        std::fs::write(dir.join("long"), idx(&[2], &[1, 2, 3])).unwrap();
        let err = Idx::read(dir.join("long")).unwrap_err().to_string();
        assert!(err.contains("has more"), "{err}");
        // a raw file shorter than its header says
        std::fs::write(dir.join("short"), idx(&[2, 3], &[1, 2, 3])).unwrap();
        let err = Idx::read(dir.join("short")).unwrap_err().to_string();
        assert!(err.contains("file has 3 (truncated)"), "{err}");
        // a stream that ends inside its header
        let err = Idx::from_reader(&[0u8, 0, 8][..]).unwrap_err();
        assert!(err.contains("too short for an IDX header"), "{err}");
        // a claim of exactly the limit is allowed (and then found truncated), one more is not
        let at_limit = Idx::from_reader(&idx(&[1 << 30], &[5])[..]).unwrap_err();
        assert!(at_limit.contains("truncated"), "{at_limit}");
        let over = Idx::from_reader(&idx(&[(1 << 30) + 1], &[5])[..]).unwrap_err();
        assert!(over.contains("limit"), "{over}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
