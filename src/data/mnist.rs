//! MNIST (or any 10-class set of 28x28 grayscale images in IDX files) and the report's preprocessing.
//!
//! Images stay `u8` in memory (47 MB for the 60 000 training images, not 246 MB as f32); each
//! batch is encoded ([`Encoding`]: the report's binarisation by default) and padded on the fly
//! by [`Dataset::batch`].

use std::ops::Range;
use std::path::{Path, PathBuf};

use ndarray::{Array1, Array3, Array4, ArrayView2, ArrayViewMut2, Axis, s};
use rand::Rng;

use serde::{Deserialize, Serialize};

use super::distort::Distortion;
use super::idx::Idx;
use crate::{Error, Result, Sequential};

/// Side of an MNIST image.
pub const SIDE: usize = 28;
/// Zero pixels added on every side: 28 + 2 + 2 = 32, LeNet-5's input.
pub const PAD: usize = 2;
/// A pixel `>= THRESHOLD` becomes 1.0, any other 0.0 (the report's binarisation).
pub const THRESHOLD: u8 = 40;
/// Classes, and so the largest label plus one.
pub const CLASSES: usize = 10;

/// Which half of the data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// `train-images-idx3-ubyte` and `train-labels-idx1-ubyte` (60 000 for MNIST).
    Train,
    /// `t10k-images-idx3-ubyte` and `t10k-labels-idx1-ubyte` (10 000 for MNIST).
    Test,
}

impl Split {
    /// The file names of the images and the labels, without `.gz`.
    pub fn file_names(self) -> (&'static str, &'static str) {
        match self {
            Split::Train => ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
            Split::Test => ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
        }
    }
}

/// How a pixel intensity (0 = background, 255 = ink) becomes a network input. A network
/// carries its own ([`Sequential::with_encoding`](crate::Sequential::with_encoding)), so that
/// data reaches it encoded the way it was trained.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub enum Encoding {
    /// The report's: 1.0 for an intensity `>= 40`, else 0.0.
    #[default]
    Binary,
    /// `background + (ink - background) · intensity / 255`; LeCun 1998 uses background -0.1
    /// and ink 1.175 (Section II-B), so that the mean input is about 0 and its variance about 1.
    Linear {
        /// The input value of intensity 0, and of the padding.
        background: f32,
        /// The input value of intensity 255.
        ink: f32,
    },
}

impl Encoding {
    /// The input value of `intensity` in [0, 255].
    pub fn encode(self, intensity: f32) -> f32 {
        match self {
            Encoding::Binary => {
                if intensity >= f32::from(THRESHOLD) {
                    1.0
                } else {
                    0.0
                }
            }
            Encoding::Linear { background, ink } => {
                background + (ink - background) * (intensity / 255.0)
            }
        }
    }

    /// Writes `image` `[H, W]`, encoded, into the middle of `out` `[H + 2p, W + 2q]`, and the
    /// encoded background into its border of `p` rows and `q` columns on each side (LeNet-5's
    /// 32x32 input: a border of 2 around MNIST's 28x28).
    ///
    /// # Errors
    /// [`Error::Shape`] when `out` is smaller than `image` or leaves an odd margin.
    pub fn preprocess_into<T: Copy + Into<f32>>(
        self,
        image: ArrayView2<T>,
        mut out: ArrayViewMut2<f32>,
    ) -> Result<()> {
        let (h, w) = image.dim();
        let (oh, ow) = out.dim();
        if oh < h || ow < w || !(oh - h).is_multiple_of(2) || !(ow - w).is_multiple_of(2) {
            return Err(Error::Shape {
                layer: "Encoding::preprocess_into",
                expected: format!("[{h} + 2p, {w} + 2q]"),
                got: out.shape().to_vec(),
            });
        }
        let (p, q) = ((oh - h) / 2, (ow - w) / 2);
        out.fill(self.encode(0.0));
        let inner = out.slice_mut(s![p..p + h, q..q + w]);
        // the variant chosen outside the pixel loop, which so has no branch (with `lto = true`
        // the compiler kept the choice inside, and encoding took six times as long)
        match self {
            Encoding::Binary => encode_into(image, inner, |v| Encoding::Binary.encode(v)),
            Encoding::Linear { background, ink } => encode_into(image, inner, |v| {
                Encoding::Linear { background, ink }.encode(v)
            }),
        }
        Ok(())
    }
}

/// `out[i, j] = encode(image[i, j])`, row by row, over slices where both rows are contiguous
/// (a plain loop, which vectorises).
fn encode_into<T: Copy + Into<f32>>(
    image: ArrayView2<T>,
    mut out: ArrayViewMut2<f32>,
    encode: impl Fn(f32) -> f32,
) {
    for (mut row, pixels) in out.rows_mut().into_iter().zip(image.rows()) {
        match (row.as_slice_mut(), pixels.as_slice()) {
            (Some(row), Some(pixels)) => {
                for (o, &v) in row.iter_mut().zip(pixels) {
                    *o = encode(v.into());
                }
            }
            _ => row.zip_mut_with(&pixels, |o, &v| *o = encode(v.into())),
        }
    }
}

/// Labelled 28x28 grayscale images.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// `[N, 28, 28]`, 0 = background.
    images: Array3<u8>,
    /// `[N]`, each below [`CLASSES`].
    labels: Vec<u8>,
    /// How batches turn pixels into inputs, when the data says so; else the network's.
    encoding: Option<Encoding>,
}

impl Dataset {
    /// Reads one split from `dir`, where each file may be raw or gzipped (`name` or `name.gz`).
    ///
    /// # Errors
    /// [`Error::Io`] naming the missing file, and the errors of [`Dataset::from_idx_files`].
    pub fn load(dir: impl AsRef<Path>, split: Split) -> Result<Self> {
        let (images, labels) = split.file_names();
        Self::from_idx_files(find(dir.as_ref(), images)?, find(dir.as_ref(), labels)?)
    }

    /// Reads an images file `[N, 28, 28]` and a labels file `[N]`.
    ///
    /// # Errors
    /// [`Error::Io`] and [`Error::Idx`] from [`Idx::read`], and [`Error::Idx`] naming the file when
    /// the images are not 28x28, the counts differ, or a label is above 9.
    pub fn from_idx_files(images: impl AsRef<Path>, labels: impl AsRef<Path>) -> Result<Self> {
        let (images_path, labels_path) = (images.as_ref(), labels.as_ref());
        let (images, labels) = (Idx::read(images_path)?, Idx::read(labels_path)?);
        let bad = |path: &Path, reason: String| Error::Idx {
            path: path.into(),
            reason,
        };
        let &[n, SIDE, SIDE] = images.dims.as_slice() else {
            return Err(bad(
                images_path,
                format!(
                    "expected images [N, 28, 28], got dimensions {:?}",
                    images.dims
                ),
            ));
        };
        let &[count] = labels.dims.as_slice() else {
            return Err(bad(
                labels_path,
                format!("expected labels [N], got dimensions {:?}", labels.dims),
            ));
        };
        if count != n {
            return Err(bad(
                labels_path,
                format!("{count} labels for {n} images in {}", images_path.display()),
            ));
        }
        let images = Array3::from_shape_vec((n, SIDE, SIDE), images.data)
            .expect("size checked by Idx::parse");
        Self::new(images, labels.data).map_err(|e| bad(labels_path, e.to_string()))
    }

    /// A data set from `images` `[N, 28, 28]` and `labels` `[N]`.
    ///
    /// # Errors
    /// [`Error::Shape`] when the counts differ or the images are not 28x28,
    /// [`Error::InvalidArgument`] when a label is above 9.
    pub fn new(images: Array3<u8>, labels: Vec<u8>) -> Result<Self> {
        let (n, h, w) = images.dim();
        if (h, w) != (SIDE, SIDE) || labels.len() != n {
            return Err(Error::shape(
                "Dataset",
                &[labels.len(), SIDE, SIDE],
                images.shape(),
            ));
        }
        if let Some((i, &label)) = labels
            .iter()
            .enumerate()
            .find(|&(_, &l)| usize::from(l) >= CLASSES)
        {
            return Err(Error::InvalidArgument {
                what: "Dataset",
                reason: format!("label {label} of item {i} is above 9"),
            });
        }
        Ok(Dataset {
            images,
            labels,
            encoding: None,
        })
    }

    /// The same data, meant for networks with `encoding` only: training or evaluating a
    /// network of another encoding is then an error. Without it, a network's batches are
    /// encoded its own way ([`Sequential::encoding`]), and [`Dataset::batch`] uses the report's
    /// [`Encoding::Binary`].
    pub fn with_encoding(mut self, encoding: Encoding) -> Self {
        self.encoding = Some(encoding);
        self
    }

    /// The encoding this data is meant for, if it names one.
    pub fn encoding(&self) -> Option<Encoding> {
        self.encoding
    }

    /// The number of labelled images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Image `i`, `[28, 28]`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `i` is not below [`Dataset::len`].
    pub fn image(&self, i: usize) -> Result<ArrayView2<'_, u8>> {
        self.check_index(i)?;
        Ok(self.images.index_axis(Axis(0), i))
    }

    /// `[C, H, W]` of one image as [`Dataset::batch`] gives it: `[1, 32, 32]`.
    pub fn image_shape(&self) -> [usize; 3] {
        [1, SIDE + 2 * PAD, SIDE + 2 * PAD]
    }

    /// How batches for `net` are made: its encoding, and its input side (`[1, S, S]` with the
    /// 28x28 images centred in a border of `(S - 28) / 2`: 28 for none, 32 for LeNet-5's).
    ///
    /// # Errors
    /// [`Error::Shape`] when `net` does not take one-channel squares of an even margin around
    /// 28x28, and [`Error::InvalidArgument`] when this data names an encoding
    /// ([`Dataset::with_encoding`]) other than the network's.
    pub fn input_for(&self, net: &Sequential) -> Result<(Encoding, usize)> {
        let [c, h, w] = net.input_shape();
        if c != 1 || h != w || h < SIDE || !(h - SIDE).is_multiple_of(2) {
            return Err(Error::Shape {
                layer: "Dataset",
                expected: format!("a network of [1, S, S] inputs, S = {SIDE} + an even margin"),
                got: vec![c, h, w],
            });
        }
        match self.encoding {
            Some(mine) if mine != net.encoding() => Err(Error::InvalidArgument {
                what: "Dataset",
                reason: format!(
                    "the data is meant for {mine:?} inputs, the network takes {:?}",
                    net.encoding()
                ),
            }),
            _ => Ok((net.encoding(), h)),
        }
    }
    fn check_index(&self, i: usize) -> Result<()> {
        if i >= self.len() {
            return Err(Error::InvalidArgument {
                what: "Dataset",
                reason: format!("index {i} is out of range for {} images", self.len()),
            });
        }
        Ok(())
    }

    fn check_range(&self, range: &Range<usize>) -> Result<()> {
        if range.start > range.end || range.end > self.len() {
            return Err(Error::InvalidArgument {
                what: "Dataset",
                reason: format!("range {range:?} is out of range for {} images", self.len()),
            });
        }
        Ok(())
    }

    /// The labels, `[N]`.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// The labelled images `range`, as a data set of their own.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `range` does not lie within `0..len()`.
    pub fn slice(&self, range: Range<usize>) -> Result<Dataset> {
        self.check_range(&range)?;
        Ok(Dataset {
            images: self.images.slice(s![range.clone(), .., ..]).to_owned(),
            labels: self.labels[range].to_vec(),
            encoding: self.encoding,
        })
    }

    /// Images `range`, preprocessed for LeNet-5: `[range.len(), 1, 32, 32]`, encoded and padded.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when `range` does not lie within `0..len()`.
    pub fn batch(&self, range: Range<usize>) -> Result<Array4<f32>> {
        self.check_range(&range)?;
        self.batch_of(&range.collect::<Vec<_>>(), None)
    }

    /// Images `indices`, as [`Dataset::batch`] makes them, each first distorted by
    /// `distortion` drawn from `rng` when there is one.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when an index is not below [`Dataset::len`].
    pub fn batch_of(
        &self,
        indices: &[usize],
        distortion: Option<(&Distortion, &mut dyn Rng)>,
    ) -> Result<Array4<f32>> {
        let encoding = self.encoding.unwrap_or_default();
        self.encode(indices, distortion, encoding, SIDE + 2 * PAD)
    }

    /// Images `indices` as `net` takes them (`[B, 1, S, S]`, see [`Dataset::input_for`]), each
    /// first distorted by `distortion` when there is one: what training and evaluation feed it.
    ///
    /// # Errors
    /// As [`Dataset::input_for`] and [`Dataset::batch_of`].
    pub fn batch_for(
        &self,
        net: &Sequential,
        indices: &[usize],
        distortion: Option<(&Distortion, &mut dyn Rng)>,
    ) -> Result<Array4<f32>> {
        let (encoding, side) = self.input_for(net)?;
        self.encode(indices, distortion, encoding, side)
    }

    /// `[B, 1, side, side]`: images `indices`, distorted, encoded and centred.
    fn encode(
        &self,
        indices: &[usize],
        mut distortion: Option<(&Distortion, &mut dyn Rng)>,
        encoding: Encoding,
        side: usize,
    ) -> Result<Array4<f32>> {
        if let Some(&i) = indices.iter().find(|&&i| i >= self.len()) {
            self.check_index(i)?;
        }
        let mut batch = Array4::zeros((indices.len(), 1, side, side));
        for (&i, mut out) in indices.iter().zip(batch.outer_iter_mut()) {
            let out = out.index_axis_mut(Axis(0), 0);
            let image = self.images.index_axis(Axis(0), i);
            match &mut distortion {
                None => encoding.preprocess_into(image, out)?,
                Some((distortion, rng)) => {
                    let warped = distortion.apply(image, *rng);
                    encoding.preprocess_into(warped.view(), out)?;
                }
            }
        }
        Ok(batch)
    }
}

/// `name` or `name.gz` in `dir`, whichever exists.
fn find(dir: &Path, name: &str) -> Result<PathBuf> {
    let raw = dir.join(name);
    let gz = dir.join(format!("{name}.gz"));
    match (raw.exists(), gz.exists()) {
        (true, _) => Ok(raw),
        (false, true) => Ok(gz),
        (false, false) => Err(Error::Io {
            path: gz,
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("neither {name} nor {name}.gz found"),
            ),
        }),
    }
}

/// The one-hot vector `[10]` of `label`; `None` when `label` is above 9.
pub fn one_hot(label: u8) -> Option<Array1<f32>> {
    let label = usize::from(label);
    (label < CLASSES)
        .then(|| Array1::from_shape_fn(CLASSES, |i| if i == label { 1.0 } else { 0.0 }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preprocessing_takes_any_even_margin_and_refuses_the_rest() {
        let image = ndarray::Array2::<u8>::from_elem((28, 28), 255);
        for (h, w, ok) in [
            (28, 28, true),
            (32, 32, true),
            (28, 32, true),
            (27, 28, false),
            (28, 27, false),
            (31, 32, false),
            (32, 31, false),
        ] {
            let mut out = ndarray::Array2::<f32>::zeros((h, w));
            let result = Encoding::Binary.preprocess_into(image.view(), out.view_mut());
            assert_eq!(result.is_ok(), ok, "{h}x{w}");
            if ok {
                // the image in the middle, the margin the background
                assert_eq!(out[[h / 2, w / 2]], 1.0);
                assert_eq!(out[[0, 0]], if h == 28 && w == 28 { 1.0 } else { 0.0 });
            }
        }
    }

    #[test]
    fn preprocessing_encodes_each_pixel_as_encode_does_whatever_the_layout() {
        let image =
            ndarray::Array2::from_shape_fn((28, 30), |(j, x)| ((j * 31 + x * 7) % 256) as u8);
        let linear = Encoding::Linear {
            background: -0.1,
            ink: 1.175,
        };
        // contiguous rows, and rows whose pixels are a column apart (a transposed view)
        for view in [
            image.slice(s![.., ..28]),
            image.slice(s![..28, ..28]).reversed_axes(),
        ] {
            for encoding in [Encoding::Binary, linear] {
                let mut out = ndarray::Array2::<f32>::from_elem((32, 34), f32::NAN);
                encoding.preprocess_into(view, out.view_mut()).unwrap();
                for ((j, x), &o) in out.indexed_iter() {
                    let expected = match (j.checked_sub(2), x.checked_sub(3)) {
                        (Some(j), Some(x)) if j < 28 && x < 28 => f32::from(view[[j, x]]),
                        _ => 0.0,
                    };
                    let expected = encoding.encode(expected);
                    assert_eq!(o.to_bits(), expected.to_bits(), "{encoding:?} at {j}, {x}");
                }
            }
        }
    }

    #[test]
    fn a_dataset_tells_its_size_and_the_encoding_it_names() {
        let data = Dataset::new(Array3::zeros((2, 28, 28)), vec![1, 2]).unwrap();
        assert!(!data.is_empty());
        assert!(data.slice(1..1).unwrap().is_empty());
        assert_eq!(data.encoding(), None);
        let linear = Encoding::Linear {
            background: -0.1,
            ink: 1.175,
        };
        assert_eq!(data.with_encoding(linear).encoding(), Some(linear));
    }

    #[test]
    fn preprocessing_thresholds_at_40_and_pads_by_2() {
        let mut images = Array3::zeros((1, 28, 28));
        images[[0, 0, 0]] = 40; // on the threshold: ink
        images[[0, 27, 27]] = 39; // below: background
        images[[0, 5, 9]] = 255;
        let data = Dataset::new(images, vec![3]).unwrap();
        let batch = data.batch(0..1).unwrap();
        assert_eq!(batch.dim(), (1, 1, 32, 32));
        assert_eq!(data.image_shape()[..], batch.shape()[1..]);
        assert_eq!(batch[[0, 0, 2, 2]], 1.0);
        assert_eq!(batch[[0, 0, 29, 29]], 0.0);
        assert_eq!(batch[[0, 0, 7, 11]], 1.0);
        assert_eq!(batch.sum(), 2.0);
    }

    #[test]
    fn slices_keep_images_with_their_labels() {
        let images = Array3::from_shape_fn((4, 28, 28), |(i, _, _)| i as u8);
        let data = Dataset::new(images, vec![0, 1, 2, 3]).unwrap();
        let part = data.slice(1..3).unwrap();
        assert_eq!(part.labels(), &[1, 2]);
        assert_eq!(part.image(1).unwrap()[[5, 5]], 2);
        // out of range is an error, never a panic
        assert!(data.slice(3..5).is_err());
        #[allow(clippy::reversed_empty_ranges)]
        let backwards = 3..1;
        assert!(data.slice(backwards.clone()).is_err());
        assert!(data.batch(backwards).is_err());
        assert!(data.image(4).is_err());
        assert!(data.batch_of(&[0, 9], None).is_err());
    }

    #[test]
    fn one_hot_labels() {
        assert_eq!(
            one_hot(3).unwrap().to_vec(),
            vec![0., 0., 0., 1., 0., 0., 0., 0., 0., 0.]
        );
        assert!(one_hot(10).is_none());
    }

    #[test]
    fn inconsistent_data_is_an_error() {
        assert!(Dataset::new(Array3::zeros((2, 28, 28)), vec![1]).is_err());
        assert!(Dataset::new(Array3::zeros((1, 27, 28)), vec![1]).is_err());
        let err = Dataset::new(Array3::zeros((2, 28, 28)), vec![1, 10])
            .unwrap_err()
            .to_string();
        assert!(err.contains("label 10 of item 1"), "{err}");
    }

    #[test]
    fn the_padding_is_the_encoded_background() {
        let images = Array3::from_elem((1, 28, 28), 255);
        let encoding = Encoding::Linear {
            background: -0.1,
            ink: 1.175,
        };
        let data = Dataset::new(images, vec![0])
            .unwrap()
            .with_encoding(encoding);
        let batch = data.batch(0..1).unwrap();
        // the 2-pixel frame is background, the 28x28 middle all ink
        assert_eq!(batch[[0, 0, 0, 0]], -0.1);
        assert_eq!(batch[[0, 0, 1, 31]], -0.1);
        assert_eq!(batch[[0, 0, 2, 2]], 1.175);
        let frame = batch.iter().filter(|&&v| v == -0.1).count();
        assert_eq!(frame, 32 * 32 - 28 * 28);
    }

    #[test]
    fn a_split_loads_from_raw_or_gzipped_files_and_names_what_is_missing() {
        use std::io::Write;
        let dir = std::env::temp_dir().join(format!("lenet5-split-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let idx = |dims: &[u32], data: &[u8]| {
            let mut bytes = vec![0, 0, 8, dims.len() as u8];
            dims.iter().for_each(|d| bytes.extend(d.to_be_bytes()));
            bytes.extend(data);
            bytes
        };
        let (images, labels) = Split::Test.file_names();
        let pixels: Vec<u8> = (0..2 * 28 * 28).map(|i| (i % 251) as u8).collect();
        // the images raw, the labels gzipped
        std::fs::write(dir.join(images), idx(&[2, 28, 28], &pixels)).unwrap();
        let err = Dataset::load(&dir, Split::Test).unwrap_err().to_string();
        assert!(err.contains(labels), "{err}");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&idx(&[2], &[7, 3])).unwrap();
        std::fs::write(dir.join(format!("{labels}.gz")), gz.finish().unwrap()).unwrap();
        let data = Dataset::load(&dir, Split::Test).unwrap();
        assert_eq!(data.labels(), &[7, 3]);
        assert_eq!(data.image(1).unwrap()[[0, 1]], ((28 * 28 + 1) % 251) as u8);
        // the training split is not there
        assert!(matches!(
            Dataset::load(&dir, Split::Train),
            Err(Error::Io { .. })
        ));
        // images that are not 28x28, and counts that differ
        std::fs::write(dir.join(images), idx(&[2, 28, 27], &pixels[..2 * 28 * 27])).unwrap();
        let err = Dataset::load(&dir, Split::Test).unwrap_err().to_string();
        assert!(err.contains("[2, 28, 27]"), "{err}");
        std::fs::write(dir.join(images), idx(&[1, 28, 28], &pixels[..28 * 28])).unwrap();
        let err = Dataset::load(&dir, Split::Test).unwrap_err().to_string();
        assert!(err.contains("2 labels for 1 images"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
