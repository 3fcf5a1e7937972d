//! Functions of a network's scores (larger is better), which a network's predictions and the
//! training losses share: softmax and argmax.

use crate::{Error, Result};

/// `probabilities[i] = e^(s_i - max s) / Σ_j e^(s_j - max s)` for `scores` `[classes]`.
///
/// # Errors
/// [`Error::Shape`] when `scores` is empty or `probabilities` has another length.
pub fn softmax(scores: &[f32], probabilities: &mut [f32]) -> Result<()> {
    check_lengths("softmax", scores, probabilities, None)?;
    normalise(scores, None, probabilities);
    Ok(())
}

/// That `scores` is not empty, `out` has its length and `label` (if any) indexes it.
pub(crate) fn check_lengths(
    function: &'static str,
    scores: &[f32],
    out: &[f32],
    label: Option<usize>,
) -> Result<()> {
    if scores.is_empty() || out.len() != scores.len() {
        return Err(Error::Shape {
            layer: function,
            expected: format!(
                "scores [classes > 0] and an output of the same length, {}",
                scores.len()
            ),
            got: vec![scores.len(), out.len()],
        });
    }
    match label {
        Some(label) if label >= scores.len() => Err(Error::InvalidArgument {
            what: function,
            reason: format!("label {label} is not below the {} classes", scores.len()),
        }),
        _ => Ok(()),
    }
}

/// `p_i = e^(s_i - m) / Z` with `Z = Σ_j e^(s_j - m)`, plus `e^(rest - m)` when there is a
/// `rest` score that takes probability but no class; `m` is the largest exponent. Returns
/// `ln` of the unshifted normaliser, `m + ln Z`.
pub(crate) fn normalise(scores: &[f32], rest: Option<f32>, p: &mut [f32]) -> f32 {
    let m = scores
        .iter()
        .copied()
        .fold(rest.unwrap_or(f32::NEG_INFINITY), f32::max);
    let mut total = rest.map_or(0.0, |r| (r - m).exp());
    for (p, &s) in p.iter_mut().zip(scores) {
        *p = (s - m).exp();
        total += *p;
    }
    p.iter_mut().for_each(|p| *p /= total);
    m + total.ln()
}

/// The index of the largest value (the first one on ties; NaN never wins), or 0 when there
/// is none (no values, or only NaN).
pub fn argmax(values: impl IntoIterator<Item = f32>) -> usize {
    let mut best = (0, f32::NEG_INFINITY);
    for (i, v) in values.into_iter().enumerate() {
        if v > best.1 {
            best = (i, v);
        }
    }
    best.0
}
