//! Accuracy, per-sample predictions and the confusion matrix, computed on both cores.

use ndarray::{Array2, ArrayView4};
use rayon::prelude::*;

use super::trainer::check_scores_per_class;
use crate::data::mnist::{CLASSES, Dataset};
pub use crate::scores::argmax;
use crate::{Result, Sequential};

/// Images per batch of [`predict_classes`]: small, so that a batch's activations stay in the
/// core's cache, and large enough for the dense layers' products to use their registers'
/// lanes (measured on one thread, median of five runs over 10 000 images: 308 ms with 8,
/// 274 ms with 16, 275 ms with 32). Scores do not depend on the batch size, down to 2.
pub const EVAL_BATCH: usize = 16;

/// The class with the highest score for each image of `data`, in order.
///
/// The images are encoded and padded as the network takes them ([`Dataset::batch_for`]).
///
/// # Errors
/// As [`Dataset::input_for`] when the network does not take the data's images, and
/// [`Error::InvalidArgument`](crate::Error::InvalidArgument) when it does not give one score
/// per class.
pub fn predict_classes(net: &(impl AsRef<Sequential> + ?Sized), data: &Dataset) -> Result<Vec<u8>> {
    let net = net.as_ref();
    check_scores_per_class(net, data)?;
    let starts: Vec<usize> = (0..data.len()).step_by(EVAL_BATCH).collect();
    let batches: Result<Vec<Vec<u8>>> = starts
        .into_par_iter()
        .map(|start| {
            let indices: Vec<usize> = (start..(start + EVAL_BATCH).min(data.len())).collect();
            classify(net, data.batch_for(net, &indices, None)?.view())
        })
        .collect();
    Ok(batches?.concat())
}

/// The class with the highest score for each image of `images` `[B, C, H, W]`.
///
/// # Errors
/// The network's [`Error::Shape`](crate::Error::Shape) when it does not take `images`, and
/// [`Error::InvalidArgument`](crate::Error::InvalidArgument) when it gives more than 256
/// scores per image (classes are `u8`).
pub fn classify(
    net: &(impl AsRef<Sequential> + ?Sized),
    images: ArrayView4<f32>,
) -> Result<Vec<u8>> {
    let scores = net.as_ref().predict(images)?;
    let per_image: usize = scores.shape()[1..].iter().product();
    if per_image > usize::from(u8::MAX) + 1 {
        return Err(crate::Error::InvalidArgument {
            what: "classify",
            reason: format!("{per_image} scores per image; classes are numbered 0 to 255"),
        });
    }
    Ok(scores
        .outer_iter()
        .map(|s| argmax(s.iter().copied()) as u8)
        .collect())
}

/// How a network does on a labelled data set.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Fraction of images classified correctly.
    pub accuracy: f64,
    /// `[true class, predicted class]` counts, `[10, 10]`.
    pub confusion: Array2<usize>,
}

/// Accuracy and confusion matrix of `net` on `data`.
///
/// # Errors
/// As [`predict_classes`].
pub fn evaluate(net: &(impl AsRef<Sequential> + ?Sized), data: &Dataset) -> Result<Evaluation> {
    let predicted = predict_classes(net, data)?;
    let mut confusion = Array2::zeros((CLASSES, CLASSES));
    for (&truth, &guess) in data.labels().iter().zip(&predicted) {
        confusion[[usize::from(truth), usize::from(guess)]] += 1;
    }
    let correct: usize = confusion.diag().sum();
    let accuracy = if data.is_empty() {
        0.0
    } else {
        correct as f64 / data.len() as f64
    };
    Ok(Evaluation {
        accuracy,
        confusion,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_the_first_largest_and_skips_nan() {
        assert_eq!(argmax([0.1, 0.5, 0.5, -1.0]), 1);
        assert_eq!(argmax([f32::NAN, -3.0]), 1);
    }

    #[test]
    fn classify_takes_up_to_256_scores_per_image() {
        let net = |scores: usize| {
            // the last score is the highest
            let bias = ndarray::Array1::from_shape_fn(scores, |i| i as f32);
            let weight = ndarray::Array2::zeros((scores, 2));
            let layer = crate::Connect::from_params(weight, bias).unwrap();
            crate::Sequential::new([2, 1, 1])
                .add(layer.with_activation(crate::Activation::Identity))
                .unwrap()
        };
        let images = ndarray::Array4::zeros((3, 2, 1, 1));
        assert_eq!(classify(&net(256), images.view()).unwrap(), vec![255; 3]);
        assert_eq!(classify(&net(2), images.view()).unwrap(), vec![1; 3]);
        assert!(classify(&net(257), images.view()).is_err());
    }

    #[test]
    fn the_confusion_matrix_is_true_class_by_predicted_class() {
        // a network that always says 7, on images of 3s
        let weight = ndarray::Array2::zeros((10, 32 * 32));
        let bias = ndarray::Array1::from_shape_fn(10, |i| if i == 7 { 5.0 } else { 0.0 });
        let net = crate::Sequential::new([1, 32, 32])
            .add(crate::Connect::from_params(weight, bias).unwrap())
            .unwrap();
        let images = ndarray::Array3::zeros((4, 28, 28));
        let data = Dataset::new(images, vec![3; 4]).unwrap();
        let evaluation = evaluate(&net, &data).unwrap();
        assert_eq!(evaluation.confusion[[3, 7]], 4);
        assert_eq!(evaluation.confusion.sum(), 4);
        assert_eq!(evaluation.accuracy, 0.0);
        assert_eq!(predict_classes(&net, &data).unwrap(), vec![7; 4]);
    }
}
