//! Property tests: no input makes the IDX reader or the model loader panic; every layer's
//! `output_shape` agrees with what `forward` returns; save then load gives the same network.
//!
//! `PROPTEST_CASES=N` sets the number of cases (256 by default); the fuzzing runs recorded in
//! `docs/robustness.md` used this file with a large N.

use lenet5::data::idx::Idx;
use lenet5::{
    Backward, Connect, Conv, Dropout, Flatten, Layer, LeNet5, MaxPool, Mode, Pass, RbfOutput, Relu,
    ScaledTanh, Sequential, Sigmoid, Subsampling, Tanh,
};
use ndarray::{Array2, Array4};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;

/// A valid small model file to mutate.
fn model_bytes() -> Vec<u8> {
    lenet5::io::to_bytes(LeNet5::with_seed(1).network(), LeNet5::ARCHITECTURE)
}

proptest! {
    #[test]
    fn idx_parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Idx::parse(&bytes);
    }

    #[test]
    fn idx_headers_with_any_dimensions_never_panic(dims in proptest::collection::vec(any::<u32>(), 0..5), body in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut bytes = vec![0, 0, 8, dims.len() as u8];
        dims.iter().for_each(|d| bytes.extend(d.to_be_bytes()));
        bytes.extend(body);
        if let Ok(idx) = Idx::parse(&bytes) {
            prop_assert_eq!(idx.data.len(), idx.dims.iter().product::<usize>());
        }
    }

    #[test]
    fn loading_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut net = LeNet5::new();
        prop_assert!(lenet5::io::load_bytes(net.network_mut(), LeNet5::ARCHITECTURE, &bytes, "fuzz").is_err());
    }

    #[test]
    fn loading_a_mutated_model_never_panics_and_errs(position in any::<prop::sample::Index>(), xor in 1u8..=255) {
        let mut bytes = model_bytes();
        let i = position.index(bytes.len());
        bytes[i] ^= xor;
        let mut net = LeNet5::new();
        prop_assert!(lenet5::io::load_bytes(net.network_mut(), LeNet5::ARCHITECTURE, &bytes, "fuzz").is_err());
    }

    #[test]
    fn output_shape_agrees_with_forward(
        c_in in 1usize..4, c_out in 1usize..5, k in 1usize..4, h in 1usize..9, w in 1usize..9, batch in 1usize..3, seed: u64,
    ) {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let input = Array4::from_elem((batch, c_in, h, w), 0.5f32);
        let layers: Vec<Box<dyn Layer>> = vec![
            Box::new(Conv::new(c_in, c_out, k, &mut rng).unwrap()),
            Box::new(Subsampling::new(c_in, k, &mut rng).unwrap()),
            Box::new(MaxPool::new(k).unwrap()),
            Box::new(Connect::new(c_in * h * w, c_out, &mut rng).unwrap()),
            Box::new(RbfOutput::from_params(Array2::ones((c_out, c_in * h * w))).unwrap()),
            Box::new(Relu),
            Box::new(Sigmoid),
            Box::new(Tanh),
            Box::new(ScaledTanh),
            Box::new(Flatten),
            Box::new(Dropout::new(0.5, seed).unwrap()),
        ];
        for mut layer in layers {
            match layer.output_shape([c_in, h, w]) {
                Ok([c, oh, ow]) => {
                    let out = layer.forward(input.view(), Pass::Predict).unwrap();
                    prop_assert_eq!(out.dim(), (batch, c, oh, ow));
                    let step = Backward {
                        input: input.view(),
                        output: out.view(),
                        grad_output: out.view(),
                        mode: Mode::Full,
                        pass: Pass::Predict,
                    };
                    prop_assert_eq!(layer.backward(step).unwrap().unwrap().dim(), input.dim());
                }
                Err(_) => prop_assert!(layer.forward(input.view(), Pass::Predict).is_err()),
            }
        }
    }

    #[test]
    fn save_then_load_gives_the_same_network(seed: u64) {
        let net = LeNet5::with_seed(seed);
        let bytes = lenet5::io::to_bytes(net.network(), LeNet5::ARCHITECTURE);
        let mut loaded = LeNet5::new();
        lenet5::io::load_bytes(loaded.network_mut(), LeNet5::ARCHITECTURE, &bytes, "mem").unwrap();
        let values = |n: &Sequential| n.params().iter().flat_map(|p| p.value.to_vec()).collect::<Vec<f32>>();
        prop_assert_eq!(values(loaded.network()), values(net.network()));
    }
}

proptest! {
    #[test]
    fn activation_layers_keep_their_ranges_and_order(values in prop::collection::vec(-50.0f32..50.0, 1..40)) {
        let n = values.len();
        let mut sorted = values.clone();
        sorted.sort_by(f32::total_cmp);
        let input = Array4::from_shape_vec((1, n, 1, 1), sorted).unwrap();
        let ranges: [(Box<dyn Layer>, f32, f32); 4] = [
            (Box::new(Relu), 0.0, f32::INFINITY),
            (Box::new(Sigmoid), 0.0, 1.0),
            (Box::new(Tanh), -1.0, 1.0),
            (Box::new(ScaledTanh), -1.7159, 1.7159),
        ];
        for (layer, low, high) in ranges {
            let out = layer.forward(input.view(), Pass::Predict).unwrap();
            // within the function's range, and never decreasing, as every one is monotone
            prop_assert!(out.iter().all(|&y| y >= low && y <= high), "{}", layer.name());
            prop_assert!(out.iter().zip(out.iter().skip(1)).all(|(a, b)| a <= b), "{}", layer.name());
        }
    }

    #[test]
    fn flatten_keeps_every_value_in_order(c in 1usize..4, h in 1usize..5, w in 1usize..5, seed: u64) {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let input = Array4::from_shape_simple_fn((2, c, h, w), || rand::RngExt::random::<f32>(&mut rng));
        let out = Flatten.forward(input.view(), Pass::Train { seed }).unwrap();
        prop_assert_eq!(out.dim(), (2, c * h * w, 1, 1));
        prop_assert_eq!(out.iter().collect::<Vec<_>>(), input.iter().collect::<Vec<_>>());
    }
}
