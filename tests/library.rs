//! The crate as another crate uses it: a stack of its own choosing saved and rebuilt from the
//! file alone, weights loaded into a stack with a layer of the user's own, safetensors for any
//! stack, networks that clone, and summaries instead of weights in `Debug`.

use lenet5::ndarray::{Array4, ArrayView4, Axis};
use lenet5::rand::SeedableRng;
use lenet5::rand::rngs::Xoshiro256PlusPlus;
use lenet5::{
    Activation, Backward, C3_CONNECTIONS, Connect, Conv, Dropout, Error, Flatten, Layer, LeNet5,
    MaxPool, Mode, Pass, Preset, RbfOutput, Relu, Result, ScaledTanh, Sequential, Sigmoid,
    Subsampling, Tanh, check,
};

/// A stack with every kind of layer this crate has, and every option.
fn every_layer(seed: u64) -> Sequential {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let table = lenet5::ndarray::Array2::from_shape_fn((16, 6), |(p, i)| C3_CONNECTIONS[p][i]);
    Sequential::new([1, 32, 32])
        .add(
            Conv::new(1, 6, 5, &mut rng)
                .unwrap()
                .with_activation(Activation::Relu),
        )
        .unwrap()
        .add(MaxPool::new(2).unwrap())
        .unwrap()
        .add(
            Conv::new(6, 16, 5, &mut rng)
                .unwrap()
                .with_connections(table)
                .unwrap(),
        )
        .unwrap()
        .add(
            Subsampling::new(16, 2, &mut rng)
                .unwrap()
                .with_activation(Activation::ScaledTanh),
        )
        .unwrap()
        .add(Flatten)
        .unwrap()
        .add(Dropout::new(0.25, 3).unwrap())
        .unwrap()
        .add_with(|shape| {
            Ok(Connect::flattening(shape, 84, &mut rng)?.with_activation(Activation::Identity))
        })
        .unwrap()
        .add(Tanh)
        .unwrap()
        .add(Relu)
        .unwrap()
        .add(Sigmoid)
        .unwrap()
        .add(ScaledTanh)
        .unwrap()
        .add(RbfOutput::digits().bipolar())
        .unwrap()
}

fn input() -> Array4<f32> {
    Array4::from_shape_fn((2, 1, 32, 32), |(b, _, r, c)| {
        ((b + r * c) % 7) as f32 / 7.0
    })
}

fn temp_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("lenet5-library-{name}-{}", std::process::id()))
}

#[test]
fn any_stack_of_the_crates_layers_is_rebuilt_from_its_file() {
    let net = every_layer(1);
    let path = temp_path("stack.bin");
    net.save(&path).unwrap();
    let back = Sequential::load(&path).unwrap();
    assert_eq!(back.configs(), net.configs());
    assert_eq!(back.input_shape(), net.input_shape());
    assert_eq!(
        back.predict(input().view()).unwrap(),
        net.predict(input().view()).unwrap()
    );
    // a preset's file is a stack too
    LeNet5::lecun1998().save(&path).unwrap();
    let lecun = Sequential::load(&path).unwrap();
    assert_eq!(
        lecun.predict(input().view()).unwrap(),
        LeNet5::lecun1998().predict(input().view()).unwrap()
    );
    std::fs::remove_file(&path).unwrap();
}

/// A trainable per-channel scale: a layer of the user's own.
#[derive(Debug, Clone)]
struct Scale {
    scale: lenet5::Param<lenet5::ndarray::Ix1>,
}

impl Layer for Scale {
    fn name(&self) -> &'static str {
        "Scale"
    }
    fn output_shape(&self, input: [usize; 3]) -> Result<[usize; 3]> {
        Ok(input)
    }
    fn forward(&self, input: ArrayView4<f32>, _: Pass) -> Result<Array4<f32>> {
        let mut out = input.to_owned();
        for (mut channel, &s) in out.axis_iter_mut(Axis(1)).zip(self.scale.value().iter()) {
            channel *= s;
        }
        Ok(out)
    }
    fn backward(&mut self, step: Backward<'_>) -> Result<Option<Array4<f32>>> {
        step.check(self)?;
        // y = s·x: dL/ds = Σ g·x (Σ g·x² in a curvature pass), dL/dx = s·g (s²·g)
        let power = if step.is_curvature() { 2 } else { 1 };
        let mut grad = step.grad_output.to_owned();
        for (c, mut g) in grad.axis_iter_mut(Axis(1)).enumerate() {
            let x = step.input.index_axis(Axis(1), c);
            let s = self.scale.value()[c];
            self.scale.grad_mut()[c] += (&g * &x.mapv(|x| x.powi(power))).sum();
            g *= s.powi(power);
        }
        Ok(step.wants_input().then_some(grad))
    }
    fn params(&self) -> Vec<lenet5::ParamRef<'_>> {
        vec![self.scale.as_ref("scale")]
    }
    fn params_mut(&mut self) -> Vec<lenet5::ParamMut<'_>> {
        vec![self.scale.as_mut("scale")]
    }
}

fn with_scale(seed: u64, activation: Activation) -> Sequential {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let scale = lenet5::ndarray::Array1::from_elem(4, 0.5 + seed as f32);
    Sequential::new([1, 8, 8])
        .add(
            Conv::new(1, 4, 3, &mut rng)
                .unwrap()
                .with_activation(activation),
        )
        .unwrap()
        .add(Scale {
            scale: lenet5::Param::new(scale),
        })
        .unwrap()
        .add(Connect::new(4 * 6 * 6, 10, &mut rng).unwrap())
        .unwrap()
}

#[test]
fn an_empty_batch_goes_forward_and_back_through_any_stack() {
    let presets = Preset::ALL.map(|p| LeNet5::from_preset(p, 1).as_ref().clone());
    for mut net in [every_layer(1)].into_iter().chain(presets) {
        let empty = Array4::<f32>::zeros((0, 1, 32, 32));
        let [c, h, w] = net.output_shape();
        assert_eq!(net.predict(empty.view()).unwrap().dim(), (0, c, h, w));
        let trace = net.trace(empty.view(), Pass::Train { seed: 1 }).unwrap();
        let grad = Array4::<f32>::zeros((0, c, h, w));
        let back = net.backprop(&trace, grad.view(), Mode::Full).unwrap();
        assert_eq!(back.map(|g| g.dim()), Some((0, 1, 32, 32)), "{net}");
        let grads = net.named_params_mut();
        assert!(
            grads.iter().all(|(_, p)| p.grad.iter().all(|&g| g == 0.0)),
            "{net}"
        );
    }
}

#[test]
fn weights_load_into_a_stack_with_the_users_own_layer() {
    let path = temp_path("weights.bin");
    let small = Array4::from_elem((1, 1, 8, 8), 0.25);
    let saved = with_scale(1, Activation::Sigmoid);
    saved.save(&path).unwrap();
    // rebuilding from the file alone cannot make the user's layer
    let err = Sequential::load(&path).unwrap_err().to_string();
    assert!(err.contains("layer 1 (Scale)"), "{err}");
    let mut other = with_scale(2, Activation::Sigmoid);
    other.load_weights(&path).unwrap();
    assert_eq!(
        other.predict(small.view()).unwrap(),
        saved.predict(small.view()).unwrap()
    );
    // a stack that differs names the first layer that does
    let mut relu = with_scale(2, Activation::Relu);
    let before = relu.predict(small.view()).unwrap();
    let err = relu.load_weights(&path).unwrap_err();
    assert!(matches!(err, Error::Model { .. }));
    assert!(
        err.to_string()
            .contains("layer 0 is Conv 1->4 3x3 Sigmoid in the file"),
        "{err}"
    );
    assert_eq!(relu.predict(small.view()).unwrap(), before);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn any_stack_round_trips_through_safetensors() {
    let net = every_layer(3);
    let path = temp_path("stack.safetensors");
    net.save_safetensors(&path).unwrap();
    let mut other = every_layer(4);
    assert_ne!(
        other.predict(input().view()).unwrap(),
        net.predict(input().view()).unwrap()
    );
    other.load_safetensors(&path).unwrap();
    assert_eq!(
        other.predict(input().view()).unwrap(),
        net.predict(input().view()).unwrap()
    );
    // into a stack with other parameters: an error naming a tensor, nothing changed
    let mut scaled = with_scale(1, Activation::Sigmoid);
    let err = scaled.load_safetensors(&path).unwrap_err().to_string();
    assert!(err.contains("layers."), "{err}");
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn networks_clone_and_debug_prints_the_summary() {
    let net = LeNet5::with_seed(3);
    let mut copy = net.clone();
    for p in copy.params_mut() {
        p.value.iter_mut().for_each(|v| *v = 0.0);
    }
    assert!(
        net.params()
            .iter()
            .any(|p| p.value.iter().any(|&v| v != 0.0))
    );
    let debug = format!("{net:?}");
    assert!(
        debug.len() < 1000 && debug.contains("total trainable parameters: 60900"),
        "{debug}"
    );
    let stack = every_layer(1);
    let copy = stack.clone();
    assert_eq!(
        copy.predict(input().view()).unwrap(),
        stack.predict(input().view()).unwrap()
    );
    assert!(format!("{stack:?}").contains("RbfOutput"));
}

#[test]
fn a_users_own_layer_passes_the_public_checks() {
    let mut scale = Scale {
        scale: lenet5::Param::new(lenet5::ndarray::Array1::from_vec(vec![0.5, -2.0, 1.5])),
    };
    let report = check::gradients(&mut scale, [2, 3, 4, 4], 1).unwrap();
    assert!(report.passed(), "{report}");
    let report = check::curvature(&mut scale, [2, 3, 4, 4], 2).unwrap();
    assert!(report.passed(), "{report}");
    // and a backward pass that forgets the scale is caught
    #[derive(Debug, Clone)]
    struct Forgetful(Scale);
    impl Layer for Forgetful {
        fn name(&self) -> &'static str {
            "Forgetful"
        }
        fn output_shape(&self, input: [usize; 3]) -> Result<[usize; 3]> {
            Ok(input)
        }
        fn forward(&self, input: ArrayView4<f32>, pass: Pass) -> Result<Array4<f32>> {
            self.0.forward(input, pass)
        }
        fn backward(&mut self, step: Backward<'_>) -> Result<Option<Array4<f32>>> {
            Ok(Some(step.grad_output.to_owned()))
        }
    }
    let report = check::gradients(&mut Forgetful(scale), [2, 3, 4, 4], 1).unwrap();
    assert!(!report.passed());
    assert!(report.at.starts_with("input["), "{report}");
}

#[test]
fn a_users_layer_that_gives_arrays_of_other_shapes_is_an_error_naming_it() {
    /// `Scale`, but with its output (`Lie::Output`) or its input derivative (`Lie::Derivative`)
    /// one sample too long.
    #[derive(Debug, Clone)]
    struct Misshapen(Scale, Lie);
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Lie {
        Output,
        Derivative,
    }
    fn longer(a: Array4<f32>) -> Array4<f32> {
        let (b, c, h, w) = a.dim();
        Array4::zeros((b + 1, c, h, w))
    }
    impl Layer for Misshapen {
        fn name(&self) -> &'static str {
            "Misshapen"
        }
        fn output_shape(&self, input: [usize; 3]) -> Result<[usize; 3]> {
            Ok(input)
        }
        fn forward(&self, input: ArrayView4<f32>, pass: Pass) -> Result<Array4<f32>> {
            let out = self.0.forward(input, pass)?;
            Ok(if self.1 == Lie::Output {
                longer(out)
            } else {
                out
            })
        }
        fn backward(&mut self, step: Backward<'_>) -> Result<Option<Array4<f32>>> {
            let grad = self.0.backward(step)?;
            Ok(grad.map(|g| {
                if self.1 == Lie::Derivative {
                    longer(g)
                } else {
                    g
                }
            }))
        }
    }
    let stack = |lie| {
        let scale = Scale {
            scale: lenet5::Param::new(lenet5::ndarray::Array1::from_vec(vec![0.5])),
        };
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
        Sequential::new([1, 8, 8])
            .add(Conv::new(1, 1, 3, &mut rng).unwrap())
            .unwrap()
            .add(Misshapen(scale, lie))
            .unwrap()
            .add(Flatten)
            .unwrap()
    };
    let named = |err: Error, what: &str| match err {
        Error::Layer { index: 1, source } => {
            assert!(matches!(
                *source,
                Error::Shape {
                    layer: "Misshapen",
                    ..
                }
            ));
            assert!(source.to_string().contains(what), "{source}");
        }
        other => panic!("{other}"),
    };
    let x = Array4::<f32>::ones((2, 1, 8, 8));
    let net = stack(Lie::Output);
    named(net.predict(x.view()).unwrap_err(), "(its output)");
    named(
        net.trace(x.view(), Pass::Predict).unwrap_err(),
        "(its output)",
    );
    let mut net = stack(Lie::Derivative);
    let trace = net.trace(x.view(), Pass::Predict).unwrap();
    let grad = Array4::<f32>::ones(trace.output().raw_dim());
    named(
        net.backprop(&trace, grad.view(), Mode::Full).unwrap_err(),
        "(its input derivative)",
    );
}
