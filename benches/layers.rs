//! Forward and backprop of each layer of the report's network, and of the modern preset's
//! max pooling, one sample at a time, as per-sample SGD runs them. Throughput is in samples
//! per second.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use lenet5::{Backward, Connect, Conv, Layer, MaxPool, Mode, Pass, RbfOutput, Subsampling};
use ndarray::Array4;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use std::hint::black_box;

/// One layer and the `[B, C, H, W]` input it takes in LeNet-5.
fn layers() -> Vec<(&'static str, Box<dyn Layer>, [usize; 4])> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(0);
    vec![
        (
            "conv_c1",
            Box::new(Conv::new(1, 6, 5, &mut rng).unwrap()),
            [1, 1, 32, 32],
        ),
        (
            "subsampling_s2",
            Box::new(Subsampling::new(6, 2, &mut rng).unwrap()),
            [1, 6, 28, 28],
        ),
        (
            "conv_c3",
            Box::new(Conv::new(6, 16, 5, &mut rng).unwrap()),
            [1, 6, 14, 14],
        ),
        (
            "subsampling_s4",
            Box::new(Subsampling::new(16, 2, &mut rng).unwrap()),
            [1, 16, 10, 10],
        ),
        (
            "conv_c5",
            Box::new(Conv::new(16, 120, 5, &mut rng).unwrap()),
            [1, 16, 5, 5],
        ),
        (
            "connect_f6",
            Box::new(Connect::new(120, 84, &mut rng).unwrap()),
            [1, 120, 1, 1],
        ),
        ("rbf_output", Box::new(RbfOutput::digits()), [1, 84, 1, 1]),
        (
            "max_pool_modern",
            Box::new(MaxPool::new(2).unwrap()),
            [1, 6, 28, 28],
        ),
    ]
}

fn bench_layers(c: &mut Criterion) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
    for (name, mut layer, shape) in layers() {
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Elements(1));
        // varied values, so that max pooling's choices are not all alike; max pooling's
        // rectified, as the modern preset's ReLU convolutions give it (half of them zero)
        let rectified = name.starts_with("max_pool");
        let input = Array4::from_shape_simple_fn(shape, || {
            let v = rng.random_range(-1.0f32..1.0);
            if rectified { v.max(0.0) } else { v }
        });
        let pass = Pass::Train { seed: 0 };
        let output = layer.forward(input.view(), pass).unwrap();
        let grad_output = Array4::from_elem(output.raw_dim(), 0.01f32);
        group.bench_function(BenchmarkId::new("forward", "sample"), |b| {
            b.iter(|| layer.forward(black_box(input.view()), pass).unwrap())
        });
        group.bench_function(BenchmarkId::new("backprop", "sample"), |b| {
            b.iter(|| {
                let step = Backward {
                    input: input.view(),
                    output: output.view(),
                    grad_output: black_box(grad_output.view()),
                    mode: Mode::Full,
                    pass,
                };
                layer.backward(step).unwrap()
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench_layers);
criterion_main!(benches);
