use lenet5::{Dataset, LeNet5, Preset};
use ndarray::Array3;
use std::ops::ControlFlow;
fn main() {
    let n = 3200;
    let images = Array3::from_shape_fn((n, 28, 28), |(k, i, j)| {
        if (i * 7 + j * 3 + k) % 5 == 0 {
            255u8
        } else {
            0
        }
    });
    let labels = (0..n).map(|i| (i % 10) as u8).collect();
    let data = Dataset::new(images, labels).unwrap();
    let t = std::time::Instant::now();
    let mut net = LeNet5::modern();
    Preset::Modern
        .trainer(1)
        .with_epochs(3)
        .with_train_accuracy(false)
        .train(&mut net, &data, |_| ControlFlow::Continue(()))
        .unwrap();
    eprintln!(
        "{:.0} samples/s",
        3.0 * n as f64 / t.elapsed().as_secs_f64()
    );
}
