//! Test helpers: a tiny data set, and the finite-difference checks of [`crate::check`] as
//! assertions.

use ndarray::{Array4, ArrayView4};

use crate::data::mnist::Dataset;
use crate::layer::{Backward, Mode, Pass};
use crate::{Layer, check};
pub(crate) use check::{dot, uniform};

/// `n` images with a bar in a place that depends on the label.
pub(crate) fn bars(n: usize) -> Dataset {
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    let images =
        ndarray::Array3::from_shape_fn(
            (n, 28, 28),
            |(i, row, _)| if row / 2 == i % 10 { 255 } else { 0 },
        );
    Dataset::new(images, labels).unwrap()
}

/// A fresh, empty directory for the test `name`, in the system's temporary directory.
pub(crate) fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("lenet5-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Asserts that [`check::gradients`] passes for `layer`.
pub(crate) fn check_gradients(layer: &mut dyn Layer, input_shape: [usize; 4], seed: u64) {
    let report = check::gradients(layer, input_shape, seed).expect("check::gradients");
    assert!(report.passed(), "{}: {report}", layer.name());
}

/// Asserts that [`check::curvature`] passes for `layer`.
pub(crate) fn check_curvature(layer: &mut dyn Layer, input_shape: [usize; 4], seed: u64) {
    let report = check::curvature(layer, input_shape, seed).expect("check::curvature");
    assert!(report.passed(), "{}: {report}", layer.name());
}

/// A backward pass of `mode` through `layer` at `input`, for `grad_output`, after a forward
/// pass in [`Pass::Predict`].
pub(crate) fn backprop(
    layer: &mut dyn Layer,
    input: ArrayView4<f32>,
    grad_output: ArrayView4<f32>,
    mode: Mode<'_>,
) -> crate::Result<Option<Array4<f32>>> {
    let output = layer.forward(input, Pass::Predict)?;
    layer.backward(Backward {
        input: input.view(),
        output: output.view(),
        grad_output: grad_output.view(),
        mode: mode.reborrow(),
        pass: Pass::Predict,
    })
}
