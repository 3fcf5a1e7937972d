//! The report's loss: softmax over the RBF scores, then cross-entropy with the one-hot label.

/// Probabilities are clamped to at least this before the logarithm (the report's `1e-20`).
pub const MIN_PROBABILITY: f32 = 1e-20;

/// `probabilities[i] = e^(s_i - max s) / Σ_j e^(s_j - max s)` for `scores` `[classes]`.
pub fn softmax(scores: &[f32], probabilities: &mut [f32]) {
    debug_assert_eq!(scores.len(), probabilities.len());
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut total = 0.0;
    for (p, &s) in probabilities.iter_mut().zip(scores) {
        *p = (s - max).exp();
        total += *p;
    }
    probabilities.iter_mut().for_each(|p| *p /= total);
}

/// Loss of `scores` `[classes]` (larger is better) for the true class `label`, writing
/// dL/d(scores) = `p - one_hot(label)` into `grad` `[classes]`.
///
/// `p = softmax(scores - max(scores))`, `L = -ln(max(p[label], 1e-20))`.
///
/// ```
/// use lenet5::train::softmax_cross_entropy;
/// let mut grad = [0.0; 2];
/// let loss = softmax_cross_entropy(&[0.0, 0.0], 1, &mut grad);
/// assert!((loss - 2f32.ln()).abs() < 1e-6); // p = [0.5, 0.5]
/// assert_eq!(grad, [0.5, -0.5]);
/// ```
pub fn softmax_cross_entropy(scores: &[f32], label: usize, grad: &mut [f32]) -> f32 {
    softmax(scores, grad);
    let loss = -grad[label].max(MIN_PROBABILITY).ln();
    grad[label] -= 1.0;
    loss
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    #[test]
    fn known_values() {
        // scores [1, 2, 3]: p = e^[-2, -1, 0] / (e^-2 + e^-1 + 1) = [0.090031, 0.244728, 0.665241]
        let mut grad = [0.0; 3];
        let loss = softmax_cross_entropy(&[1.0, 2.0, 3.0], 0, &mut grad);
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
        let loss = softmax_cross_entropy(&[-1000.0, 0.0], 0, &mut grad);
        assert_relative_eq!(loss, 46.0517, max_relative = 1e-5);
        assert_eq!(grad, [-1.0, 1.0]);
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let scores = [0.3f32, -1.2, 2.0, 0.0];
        let mut grad = [0.0; 4];
        softmax_cross_entropy(&scores, 2, &mut grad);
        for i in 0..4 {
            let h = 1e-2;
            let at = |d: f32| {
                let mut s = scores;
                s[i] += d;
                softmax_cross_entropy(&s, 2, &mut [0.0; 4])
            };
            assert_relative_eq!(grad[i], (at(h) - at(-h)) / (2.0 * h), epsilon = 1e-3);
        }
    }
}
