//! Training and evaluation throughput of the report's network, in samples per second:
//! one per-sample SGD step, batched evaluation on both cores, and one whole epoch of the
//! report's schedule (about 6 000 steps, then accuracy over 60 000 images); and an epoch of
//! the modern preset's mini-batches on all the cores and on one.
//!
//! The images are synthetic (seeded noise with MNIST's ink density), so the benchmarks need no
//! data set; the work per image is the same as on MNIST. One more, `sgd_step/trained_mnist`,
//! steps the shipped trained network on MNIST's images when `MNIST_DIR` names their
//! directory.

use std::hint::black_box;
use std::ops::ControlFlow;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lenet5::rayon;
use lenet5::train::{evaluate, softmax_cross_entropy};
use lenet5::{Dataset, LeNet5, Pass, Preset, Sgd, Split};
use ndarray::{Array3, ArrayView4, Axis};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

/// `n` images of seeded noise (about 19 % ink, as MNIST after thresholding) with random labels.
fn synthetic(n: usize) -> Dataset {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(0);
    let images =
        Array3::from_shape_simple_fn((n, 28, 28), || if rng.random_bool(0.19) { 255 } else { 0 });
    let labels = (0..n).map(|_| rng.random_range(0..10)).collect();
    Dataset::new(images, labels).expect("valid synthetic data")
}

fn bench_step(c: &mut Criterion) {
    let data = synthetic(1);
    let input = data.batch(0..1).expect("one image");
    let mut group = c.benchmark_group("sgd_step");
    group.throughput(Throughput::Elements(1));
    let mut net = LeNet5::new();
    group.bench_function("sample", |b| b.iter(|| step(&mut net, input.view(), 3)));
    // The shipped trained network on MNIST's first 1 000 training images, one after another:
    // its saturated units pass back gradients that would be subnormal numbers if they were
    // not set to zero (on noise they do not saturate so).
    match std::env::var_os("MNIST_DIR") {
        Some(dir) => {
            let data = Dataset::load(dir, Split::Train).expect("MNIST in $MNIST_DIR");
            let inputs = data.batch(0..1000).expect("1 000 images");
            let mut net = LeNet5::load("assets/lenet5-report.bin").expect("the shipped model");
            let mut samples = inputs.outer_iter().zip(data.labels()).cycle();
            group.bench_function("trained_mnist", |b| {
                b.iter(|| {
                    let (input, &label) = samples.next().expect("a cycle");
                    step(&mut net, input.insert_axis(Axis(0)), usize::from(label))
                })
            });
        }
        None => eprintln!("sgd_step/trained_mnist skipped: set MNIST_DIR to MNIST's directory"),
    }
    group.finish();
}

/// One per-sample step of `net` on `input` `[1, 1, 32, 32]` with class `label` (the fused
/// pass and step the trainer takes), at a rate so small that the weights (and so the work)
/// stay as they are.
fn step(net: &mut LeNet5, input: ArrayView4<f32>, label: usize) {
    let mut grad = [0.0; 10];
    let trace = net
        .trace(black_box(input), Pass::Train { seed: 0 })
        .unwrap();
    softmax_cross_entropy(trace.output().as_slice().unwrap(), label, &mut grad).unwrap();
    let grad = ArrayView4::from_shape((1, 10, 1, 1), &grad).unwrap();
    assert!(net.descend(&trace, grad, 1e-12).unwrap());
}

fn bench_eval(c: &mut Criterion) {
    let data = synthetic(10_000);
    let net = LeNet5::new();
    let mut group = c.benchmark_group("evaluate");
    group.throughput(Throughput::Elements(data.len() as u64));
    group.sample_size(10);
    group.bench_function("10000_images", |b| {
        b.iter(|| evaluate(black_box(&net), &data).unwrap())
    });
    group.finish();
}

fn bench_epoch(c: &mut Criterion) {
    let data = synthetic(60_000);
    let mut group = c.benchmark_group("report_epoch");
    group.sample_size(10);
    group.throughput(Throughput::Elements(data.len() as u64));
    group.bench_function("60000_images", |b| {
        b.iter(|| {
            let mut net = LeNet5::new();
            Sgd.trainer()
                .with_epochs(1)
                .train(&mut net, &data, |_| ControlFlow::Continue(()))
                .unwrap()
        })
    });
    group.finish();
}

/// One epoch of the modern preset's training (batches of 32, Adam) on 3 200 images, on all
/// the cores and on one: the two figures of one run give the data-parallel speed-up.
fn bench_modern(c: &mut Criterion) {
    let data = synthetic(3_200);
    let mut group = c.benchmark_group("modern_batches");
    group.sample_size(10);
    group.throughput(Throughput::Elements(data.len() as u64));
    let epoch = || {
        let mut net = LeNet5::modern();
        Preset::Modern
            .trainer(1)
            .with_epochs(1)
            .with_train_accuracy(false)
            .train(&mut net, &data, |_| ControlFlow::Continue(()))
            .unwrap()
    };
    group.bench_function("all_cores", |b| b.iter(epoch));
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("a pool of one thread");
    group.bench_function("one_thread", |b| b.iter(|| one.install(epoch)));
    group.finish();
}

criterion_group!(benches, bench_step, bench_eval, bench_epoch, bench_modern);
criterion_main!(benches);
