//! Training losses over a network's scores (larger is better): the report's softmax
//! cross-entropy, and LeCun et al. 1998's MAP criterion for RBF outputs.

use ndarray::{Array4, ArrayView4};
use serde::{Deserialize, Serialize};

use crate::Result;
pub use crate::scores::softmax;
use crate::scores::{check_lengths, normalise};

/// Probabilities are clamped to at least this before the logarithm (the report's `1e-20`).
pub const MIN_PROBABILITY: f32 = 1e-20;

/// Loss of `scores` `[classes]` (larger is better) for the true class `label`, writing
/// dL/d(scores) = `p - one_hot(label)` into `grad` `[classes]`.
///
/// `p = softmax(scores - max(scores))`, `L = -ln(max(p[label], 1e-20))`.
///
/// ```
/// use lenet5::train::softmax_cross_entropy;
/// let mut grad = [0.0; 2];
/// let loss = softmax_cross_entropy(&[0.0, 0.0], 1, &mut grad)?;
/// assert!((loss - 2f32.ln()).abs() < 1e-6); // p = [0.5, 0.5]
/// assert_eq!(grad, [0.5, -0.5]);
/// assert!(softmax_cross_entropy(&[0.0, 0.0], 2, &mut grad).is_err()); // no class 2
/// # Ok::<(), lenet5::Error>(())
/// ```
///
/// # Errors
/// [`Error::Shape`](crate::Error::Shape) when `scores` is empty or `grad` has another length,
/// [`Error::InvalidArgument`](crate::Error::InvalidArgument) when `label` is not below the number of scores.
pub fn softmax_cross_entropy(scores: &[f32], label: usize, grad: &mut [f32]) -> Result<f32> {
    check_lengths("softmax_cross_entropy", scores, grad, Some(label))?;
    normalise(scores, None, grad);
    let loss = -grad[label].max(MIN_PROBABILITY).ln();
    grad[label] -= 1.0;
    Ok(loss)
}

/// What a trainer minimises for one sample's scores `[classes]` and its label.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Loss {
    /// [`softmax_cross_entropy`]: the report's loss, and the usual one for a linear output.
    SoftmaxCrossEntropy,
    /// LeCun et al. 1998's maximum a posteriori criterion (Section II-C, equation 9) for RBF
    /// penalties `y_i = -s_i`: `L = y_D + ln(e^-j + Σ_i e^-y_i)`. It pulls the correct class's
    /// penalty down and pushes the others up only while they are below about `j`, so that
    /// the RBF centres could train without collapsing. The paper calls `j` a positive
    /// constant and gives no value.
    Map {
        /// The constant `j`.
        j: f32,
    },
}

impl Loss {
    /// Loss of `scores` `[classes]` for class `label`, writing dL/d(scores) into `grad`.
    ///
    /// ```
    /// use lenet5::train::Loss;
    /// // y = [0, ∞): L = 0 + ln(e^-1 + e^0 + 0)
    /// let mut grad = [0.0; 2];
    /// let loss = Loss::Map { j: 1.0 }.compute(&[0.0, f32::NEG_INFINITY], 0, &mut grad)?;
    /// assert!((loss - (1.0 + (-1f32).exp()).ln()).abs() < 1e-6);
    /// # Ok::<(), lenet5::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`softmax_cross_entropy`].
    pub fn compute(self, scores: &[f32], label: usize, grad: &mut [f32]) -> Result<f32> {
        match self {
            Loss::SoftmaxCrossEntropy => softmax_cross_entropy(scores, label, grad),
            Loss::Map { j } => {
                check_lengths("Loss::Map", scores, grad, Some(label))?;
                // p_i = e^s_i / (e^-j + Σ e^s) = dL/ds_i for i ≠ D
                let log_z = normalise(scores, Some(-j), grad);
                grad[label] -= 1.0;
                // L = -s_D + ln(e^-j + Σ e^s_i)
                Ok(log_z - scores[label])
            }
        }
    }

    /// The mean loss of a batch of `scores` `[B, classes, 1, 1]` (any `[B, C, H, W]`, each
    /// sample's scores read row by row) for `labels` `[B]`, and dL/d(scores) of that mean, the
    /// shape of `scores`.
    ///
    /// ```
    /// use lenet5::ndarray::array;
    /// use lenet5::train::Loss;
    /// let scores = array![[[[0.0]], [[0.0]]], [[[0.0]], [[0.0]]]]; // [2, 2, 1, 1]
    /// let (loss, grad) = Loss::SoftmaxCrossEntropy.batch(scores.view(), &[0, 1])?;
    /// assert!((loss - 2f64.ln()).abs() < 1e-6);
    /// assert_eq!(grad[[0, 0, 0, 0]], -0.25); // (0.5 - 1) / 2
    /// # Ok::<(), lenet5::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Shape`](crate::Error::Shape) when there is not one label per sample or no
    /// sample, and the errors of [`Loss::compute`].
    pub fn batch(self, scores: ArrayView4<f32>, labels: &[usize]) -> Result<(f64, Array4<f32>)> {
        let batch = scores.dim().0;
        if batch == 0 || labels.len() != batch {
            return Err(crate::Error::shape(
                "Loss::batch",
                &[batch],
                &[labels.len()],
            ));
        }
        let scores = scores.as_standard_layout();
        let mut grad = Array4::zeros(scores.raw_dim());
        let mut total = 0.0;
        for ((s, mut g), &label) in scores.outer_iter().zip(grad.outer_iter_mut()).zip(labels) {
            let s = s.to_slice().expect("standard layout");
            let g = g.as_slice_mut().expect("zeros are in standard layout");
            total += f64::from(self.compute(s, label, g)?);
        }
        grad /= batch as f32;
        Ok((total / batch as f64, grad))
    }

    /// ∂²L/∂s_i² into `curvature`, from the `grad` that [`Loss::compute`] wrote for `label`.
    /// For both losses `grad = p - one_hot(label)` and the diagonal is `p_i (1 - p_i)`.
    ///
    /// # Errors
    /// As [`softmax_cross_entropy`], with `grad` in the place of the scores.
    pub fn curvature(self, grad: &[f32], label: usize, curvature: &mut [f32]) -> Result<()> {
        check_lengths("Loss::curvature", grad, curvature, Some(label))?;
        for (i, (c, &g)) in curvature.iter_mut().zip(grad).enumerate() {
            let p = if i == label { g + 1.0 } else { g };
            *c = p * (1.0 - p);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;
    use approx::assert_relative_eq;

    #[test]
    fn a_batch_is_the_mean_of_its_samples() {
        let scores = crate::check::uniform((3, 4, 1, 1), 1);
        let labels = [2, 0, 3];
        for loss in [Loss::SoftmaxCrossEntropy, Loss::Map { j: 1.5 }] {
            let (mean, grad) = loss.batch(scores.view(), &labels).unwrap();
            let mut total = 0.0;
            for (b, &label) in labels.iter().enumerate() {
                let s: Vec<f32> = scores
                    .index_axis(ndarray::Axis(0), b)
                    .iter()
                    .copied()
                    .collect();
                let mut g = [0.0; 4];
                total += f64::from(loss.compute(&s, label, &mut g).unwrap());
                for (k, g) in g.iter().enumerate() {
                    assert_eq!(grad[[b, k, 0, 0]], g / 3.0);
                }
            }
            assert!((mean - total / 3.0).abs() < 1e-12);
        }
        let err = Loss::SoftmaxCrossEntropy.batch(scores.view(), &[0, 1]);
        assert!(matches!(err, Err(Error::Shape { .. })));
        let empty = Array4::<f32>::zeros((0, 4, 1, 1));
        assert!(Loss::SoftmaxCrossEntropy.batch(empty.view(), &[]).is_err());
        assert!(
            Loss::SoftmaxCrossEntropy
                .batch(scores.view(), &[0, 1, 4])
                .is_err()
        );
    }

    #[test]
    fn map_loss_by_hand_and_by_finite_differences() {
        // y = [1, 3], j = 2: L = 1 + ln(e^-2 + e^-1 + e^-3) = 1 + ln(0.553002) = 0.407606
        let loss = Loss::Map { j: 2.0 };
        let scores = [-1.0f32, -3.0];
        let mut grad = [0.0; 2];
        assert_relative_eq!(
            loss.compute(&scores, 0, &mut grad).unwrap(),
            0.407606,
            max_relative = 1e-5
        );
        for label in 0..2 {
            loss.compute(&scores, label, &mut grad).unwrap();
            for i in 0..2 {
                let h = 1e-2;
                let at = |d: f32| {
                    let mut s = scores;
                    s[i] += d;
                    loss.compute(&s, label, &mut [0.0; 2]).unwrap()
                };
                assert_relative_eq!(grad[i], (at(h) - at(-h)) / (2.0 * h), epsilon = 1e-3);
            }
        }
    }

    #[test]
    fn curvature_matches_second_differences() {
        let scores = [0.3f32, -1.2, 2.0];
        for loss in [Loss::SoftmaxCrossEntropy, Loss::Map { j: 0.5 }] {
            let mut grad = [0.0; 3];
            loss.compute(&scores, 1, &mut grad).unwrap();
            let mut curvature = [0.0; 3];
            loss.curvature(&grad, 1, &mut curvature).unwrap();
            for i in 0..3 {
                let h = 1e-2;
                let at = |d: f32| {
                    let mut s = scores;
                    s[i] += d;
                    f64::from(loss.compute(&s, 1, &mut [0.0; 3]).unwrap())
                };
                let numeric = (at(h) - 2.0 * at(0.0) + at(-h)) / f64::from(h * h);
                assert_relative_eq!(f64::from(curvature[i]), numeric, epsilon = 2e-2);
            }
        }
    }

    #[test]
    fn known_values() {
        // scores [1, 2, 3]: p = e^[-2, -1, 0] / (e^-2 + e^-1 + 1) = [0.090031, 0.244728, 0.665241]
        let mut grad = [0.0; 3];
        let loss = softmax_cross_entropy(&[1.0, 2.0, 3.0], 0, &mut grad).unwrap();
        assert_relative_eq!(loss, -(0.090031f32.ln()), max_relative = 1e-5);
        assert_relative_eq!(
            &grad[..],
            &[0.090031 - 1.0, 0.244728, 0.665241][..],
            max_relative = 1e-5
        );
    }

    #[test]
    fn a_hopeless_score_is_clamped_not_infinite() {
        // p[0] = e^-1000 underflows to 0; the clamp gives -ln(1e-20) = 46.0517
        let mut grad = [0.0; 2];
        let loss = softmax_cross_entropy(&[-1000.0, 0.0], 0, &mut grad).unwrap();
        assert_relative_eq!(loss, 46.0517, max_relative = 1e-5);
        assert_eq!(grad, [-1.0, 1.0]);
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let scores = [0.3f32, -1.2, 2.0, 0.0];
        let mut grad = [0.0; 4];
        softmax_cross_entropy(&scores, 2, &mut grad).unwrap();
        for i in 0..4 {
            let h = 1e-2;
            let at = |d: f32| {
                let mut s = scores;
                s[i] += d;
                softmax_cross_entropy(&s, 2, &mut [0.0; 4]).unwrap()
            };
            assert_relative_eq!(grad[i], (at(h) - at(-h)) / (2.0 * h), epsilon = 1e-3);
        }
    }

    #[test]
    fn bad_labels_and_lengths_are_errors() {
        let mut grad = [0.0; 3];
        for loss in [Loss::SoftmaxCrossEntropy, Loss::Map { j: 1.0 }] {
            assert!(matches!(
                loss.compute(&[0.0; 3], 3, &mut grad),
                Err(Error::InvalidArgument { .. })
            ));
            assert!(matches!(
                loss.compute(&[0.0; 3], 0, &mut [0.0; 2]),
                Err(Error::Shape { .. })
            ));
            assert!(loss.compute(&[], 0, &mut []).is_err());
            assert!(loss.curvature(&grad, 5, &mut [0.0; 3]).is_err());
            assert!(loss.curvature(&grad, 0, &mut [0.0; 4]).is_err());
        }
        assert!(softmax(&[1.0, 2.0], &mut [0.0; 3]).is_err());
    }
}
