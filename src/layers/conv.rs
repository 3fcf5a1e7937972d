//! Convolution (C1, C3, C5): cross-correlation, plus bias, then an activation (sigmoid by default).
//!
//! `out[b, p, j, k] = f(bias[p] + Σ_{i,l,m} input[b, i, j+l, k+m] · weight[p, i, l, m])`
//!
//! Stride 1, no padding: a `[C_in, H, W]` input gives `[C_out, H - K + 1, W - K + 1]`.
//! An optional connection table ([`Conv::with_connections`]) lets output map `p` see only some
//! input maps, as LeNet-5's C3 does in LeCun et al. 1998 (Table I).
//! The sums are a direct convolution over the input's full-width layout (see `window.rs`):
//! one fused multiply-add after another per output value, bit for bit the sums of `im2col`
//! and a matrix product, without copying the windows. Where that layout has a quarter more
//! positions than the valid ones (C3's rows of 10 in 14), a batch's forward pass goes eight
//! samples at a time, one in each lane of a register (see `lanes.rs`), over the valid
//! positions only, with the same sums bit for bit.
//!
//! ```
//! # fn main() -> lenet5::Result<()> {
//! use lenet5::{Conv, Layer, Pass};
//! use ndarray::{Array1, Array4};
//! let conv = Conv::from_params(Array4::ones((1, 1, 2, 2)), Array1::zeros(1))?;
//! let out = conv.forward(Array4::ones((1, 1, 3, 3)).view(), Pass::Predict)?;
//! assert_eq!(out.dim(), (1, 1, 2, 2));
//! assert!((out[[0, 0, 0, 0]] - 0.98201).abs() < 1e-5); // sigmoid(1 + 1 + 1 + 1)
//! # Ok(()) }
//! ```

use ndarray::{
    Array1, Array2, Array4, ArrayView1, ArrayView3, ArrayView4, ArrayViewMut2, ArrayViewMut3,
    ArrayViewMut4, Axis, CowArray, Ix1, Ix2, Ix4,
};
use rand::Rng;

use super::activation::Activation;
use super::{DenseDescent, Init, regain, zeros_param};
use crate::kernels::lanes::{LANES, Lane, MAPS, correlate_lanes, to_lanes};
use crate::kernels::window::{ConvShape, Taps, positions};
use crate::kernels::{correlate, correlate_adjoint, correlate_weight_grad, matmul};
use crate::layer::{Backward, Descended, Layer, LayerConfig, Param, ParamMut, ParamRef, Pass, chw};
use crate::{Error, Result};

/// A 2-D convolution layer with `C_out` kernels of `C_in x K x K`, stride 1, no padding.
#[derive(Debug, Clone)]
pub struct Conv {
    /// `[C_out, C_in, K, K]`, uniform in [-1, 1) from [`Conv::new`].
    weight: Param<Ix4>,
    /// `[C_out]`, uniform in [-1, 1) from [`Conv::new`].
    bias: Param<Ix1>,
    activation: Activation,
    /// `[C_out, C_in]`, true where output map `p` sees input map `i`; `None` when all are
    /// connected. The weights of a missing connection stay zero: their gradient is always
    /// cleared, and the products read them as zero whatever they hold.
    connections: Option<Array2<bool>>,
    /// Whether the values are [`Init::Default`]'s, which follow the activation.
    default_init: bool,
    /// The fused step of plain gradient descent for one sample.
    descent: DenseDescent,
}

impl Conv {
    /// `out_channels` kernels of `in_channels x kernel x kernel`, weights and biases drawn by
    /// [`Init::Default`] for the activation (sigmoid, until [`Conv::with_activation`] changes
    /// it).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when a size is zero.
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        let weight = zeros_param("Conv", [out_channels, in_channels, kernel, kernel])?;
        let bias = zeros_param("Conv", out_channels)?;
        Ok(Self::from_params(weight, bias)?.with_init(Init::Default, rng))
    }

    /// A layer with known `weight` `[C_out, C_in, K, K]` and `bias` `[C_out]`.
    ///
    /// # Errors
    /// [`Error::Shape`] when the kernel is not square, a size is zero, or `bias` is not `[C_out]`.
    pub fn from_params(weight: Array4<f32>, bias: Array1<f32>) -> Result<Self> {
        let (c_out, c_in, kh, kw) = weight.dim();
        if kh != kw || c_out == 0 || c_in == 0 || kh == 0 {
            return Err(Error::Shape {
                layer: "Conv",
                expected: "weight [C_out > 0, C_in > 0, K > 0, K]".into(),
                got: weight.shape().to_vec(),
            });
        }
        if bias.len() != c_out {
            return Err(Error::shape("Conv", &[c_out], bias.shape()));
        }
        Ok(Conv {
            weight: Param::new(weight.as_standard_layout().into_owned()),
            bias: Param::new(bias),
            activation: Activation::Sigmoid,
            connections: None,
            default_init: false,
            descent: DenseDescent::new(),
        })
    }

    /// The same layer with another activation (sigmoid by default). Values drawn by
    /// [`Init::Default`] are rescaled to that activation's.
    pub fn with_activation(mut self, activation: Activation) -> Self {
        if self.default_init {
            let factor = regain(self.activation, activation);
            self.weight.value *= factor;
            self.bias.value *= factor;
        }
        self.activation = activation;
        self
    }

    /// The same layer with output map `p` connected to input map `i` only where
    /// `table[[p, i]]` (`[C_out, C_in]`); the weights of missing connections become zero and
    /// stay so.
    ///
    /// # Errors
    /// [`Error::Shape`] when `table` is not `[C_out, C_in]`, [`Error::InvalidArgument`] when an
    /// output map has no input.
    pub fn with_connections(mut self, table: Array2<bool>) -> Result<Self> {
        let (c_out, c_in, _, _) = self.weight.value.dim();
        if table.dim() != (c_out, c_in) {
            return Err(Error::shape("Conv", &[c_out, c_in], table.shape()));
        }
        if let Some(p) = table.outer_iter().position(|row| !row.iter().any(|&c| c)) {
            return Err(Error::InvalidArgument {
                what: "Conv::with_connections",
                reason: format!("output map {p} has no input map"),
            });
        }
        self.connections = Some(table);
        self.clear_missing_connections();
        Ok(self)
    }

    /// The same layer with weights and biases drawn by `init` from each output map's fan-in
    /// (connected input maps · K · K).
    pub fn with_init(mut self, init: Init, rng: &mut impl Rng) -> Self {
        let (_, c_in, k, _) = self.weight.value.dim();
        let inputs = |p: usize| {
            self.connections
                .as_ref()
                .map_or(c_in, |t| t.row(p).iter().filter(|&&c| c).count())
        };
        let fan_in = |p: usize| inputs(p) * k * k;
        let act = self.activation;
        for (p, mut kernel) in self.weight.value.outer_iter_mut().enumerate() {
            let fan = fan_in(p);
            kernel
                .iter_mut()
                .for_each(|w| *w = init.weight(fan, act, rng));
        }
        self.bias.value = init.biases(self.bias.value.len(), fan_in, act, rng);
        self.default_init = init == Init::Default;
        self.clear_missing_connections();
        self
    }

    /// Zeroes the weights and gradients of missing connections.
    fn clear_missing_connections(&mut self) {
        if let Some(table) = &self.connections {
            zero_missing(&mut self.weight.value, table);
            zero_missing(&mut self.weight.grad, table);
        }
    }

    /// The kernels, `[C_out, C_in, K, K]`.
    pub fn weight(&self) -> ArrayView4<'_, f32> {
        self.weight.value.view()
    }

    /// The biases, `[C_out]`.
    pub fn bias(&self) -> ArrayView1<'_, f32> {
        self.bias.value.view()
    }

    fn kernel(&self) -> usize {
        self.weight.value.dim().2
    }

    /// The kernels as the `[C_out, C_in·K·K]` matrix that multiplies the windows, with the
    /// kernels of missing connections zero whatever `weight` holds there (a copy only then).
    fn weight_matrix<'a>(
        weight: &'a Array4<f32>,
        connections: Option<&Array2<bool>>,
    ) -> CowArray<'a, f32, Ix2> {
        let (c_out, c_in, k, _) = weight.dim();
        let shape = (c_out, c_in * k * k);
        match connections {
            None => weight
                .view()
                .into_shape_with_order(shape)
                .expect("standard layout")
                .into(),
            Some(table) => {
                let mut masked = weight.clone();
                zero_missing(&mut masked, table);
                masked
                    .into_shape_with_order(shape)
                    .expect("standard layout")
                    .into()
            }
        }
    }

    /// The shape of this layer's correlation over a `[C_in, height, width]` input.
    fn conv_shape(&self, height: usize, width: usize) -> ConvShape {
        let (c_out, c_in, k, _) = self.weight.value.dim();
        ConvShape {
            c_in,
            c_out,
            height,
            width,
            k,
        }
    }

    /// The taps of the kernels for a `[C_in, height, width]` input, for [`correlate`]; `None`
    /// for a single output position, which [`Conv::forward_dense`] computes.
    fn taps(&self, height: usize, width: usize) -> Option<Taps> {
        let shape = self.conv_shape(height, width);
        let weight = self.weight.value.as_slice().expect("standard layout");
        (shape.positions() > 1).then(|| shape.taps(weight, flat_table(&self.connections)))
    }

    /// The sums of `input` `[B, C_in, H, W]` through the kernels and activation, `[B, C_out,
    /// OH, OW]`: one sample at a time ([`Conv::forward_sample`]), or the whole batch at once
    /// for a single output position ([`Conv::forward_dense`]).
    fn compute(&self, input: ArrayView4<f32>) -> Result<Array4<f32>> {
        let out_shape = self.out_shape(&input)?;
        let (_, _, height, width) = input.dim();
        let mut output = Array4::zeros(out_shape);
        match self.taps(height, width) {
            Some(taps) => {
                let groups = if self.lanes_pay(out_shape) {
                    out_shape[0] / LANES
                } else {
                    0
                };
                let (lanes, rest) = input.split_at(Axis(0), groups * LANES);
                let (mut lanes_out, mut rest_out) =
                    output.view_mut().split_at(Axis(0), groups * LANES);
                self.forward_lanes(&taps, lanes, &mut lanes_out);
                for (x, y) in rest.outer_iter().zip(rest_out.outer_iter_mut()) {
                    self.forward_sample(&taps, x, y);
                }
            }
            None => self.forward_dense(input, &mut output),
        }
        Ok(output)
    }

    /// Whether [`Conv::forward_lanes`] pays for its copies into and out of the lanes: when
    /// the per-sample path's full-width positions are at least a quarter more than the valid
    /// ones, which are all the lanes compute. (Measured on LeNet-5: C3's 136 for 100 pay, C1's
    /// 892 for 784 do not.)
    fn lanes_pay(&self, [_, _, oh, ow]: [usize; 4]) -> bool {
        let k = self.kernel();
        4 * positions(oh + k - 1, ow + k - 1, k) >= 5 * oh * ow
    }

    /// Several output positions, a batch of whole groups of [`LANES`] samples: each group's
    /// sums at once ([`correlate_lanes`], the same bits as [`Conv::forward_sample`]'s), then
    /// `output` ← f(sums + bias).
    fn forward_lanes(&self, taps: &Taps, input: ArrayView4<f32>, output: &mut ArrayViewMut4<f32>) {
        let (samples, c_in, height, width) = input.dim();
        if samples == 0 {
            // no group of eight: no buffers to make
            return;
        }
        let (_, c_out, oh, ow) = output.dim();
        let (per_in, per_out) = (c_in * height * width, c_out * oh * ow);
        let shape = self.conv_shape(height, width);
        let bias = self.bias.value.as_slice().expect("standard layout");
        let input = input.as_standard_layout();
        let x = input.as_slice().expect("standard layout");
        let y = output
            .as_slice_mut()
            .expect("a fresh array's first samples");
        let (mut lanes, mut maps) = (
            vec![Lane::default(); per_in],
            vec![Lane::default(); MAPS * oh * ow],
        );
        let groups = x.chunks_exact(per_in * LANES);
        for (x, y) in groups.zip(y.chunks_exact_mut(per_out * LANES)) {
            to_lanes(x, per_in, &mut lanes);
            correlate_lanes(&lanes, shape, taps, bias, &mut maps, y);
            self.activation.apply(y);
        }
    }

    /// A single output position (C5): each sample's input `[C_in, K, K]` is its only window,
    /// so `output` `[B, C_out, 1, 1]` ← f(inputs `[B, C_in·K·K]` · weight matrixᵀ + bias), one
    /// matrix product for the batch (a matrix-vector product for one sample).
    fn forward_dense(&self, input: ArrayView4<f32>, output: &mut Array4<f32>) {
        let (batch, c_out, _, _) = output.dim();
        let input = input.as_standard_layout();
        let x = input
            .view()
            .into_shape_with_order((batch, per_sample(&input)))
            .expect("standard layout");
        let weight = Self::weight_matrix(&self.weight.value, self.connections.as_ref());
        let out = output.as_slice_mut().expect("fresh array");
        let sums = ArrayViewMut2::from_shape((batch, c_out), &mut *out).expect("[B, C_out]");
        matmul(x, weight.t(), 0.0, sums);
        for row in out.chunks_exact_mut(c_out) {
            row.iter_mut()
                .zip(&self.bias.value)
                .for_each(|(y, b)| *y += b);
        }
        self.activation.apply(out);
    }

    /// One sample: `output` `[C_out, OH, OW]` ← f(the correlation of `input` `[C_in, H, W]`
    /// with the kernels whose `taps` are given, plus the bias) ([`correlate`]).
    fn forward_sample(&self, taps: &Taps, input: ArrayView3<f32>, mut output: ArrayViewMut3<f32>) {
        let width = input.dim().2;
        let input = input.as_standard_layout();
        let flat = input.as_slice().expect("standard layout");
        let (bias, ow) = (
            self.bias.value.as_slice().expect("standard layout"),
            output.dim().2,
        );
        let out = output.as_slice_mut().expect("standard layout");
        correlate(flat, (width, ow), taps, bias, out);
        self.activation.apply(out);
    }

    /// Adds dL/dW and dL/d(bias) for `grad` (dL/d(weighted sum), `[B, C_out, OH, OW]`) and the
    /// input of `step`, and returns dL/d(input) `[B, C_in, H, W]` when `step` wants it. In a
    /// curvature pass, inputs and weights enter squared, which turns gradients into
    /// Gauss-Newton curvatures.
    fn accumulate(&mut self, grad: Array4<f32>, step: &Backward<'_>) -> Option<Array4<f32>> {
        let (batch, _, oh, ow) = grad.dim();
        let (_, c_in, k, _) = self.weight.value.dim();
        let (height, width) = (oh + k - 1, ow + k - 1);
        let n = positions(height, width, k);
        let grad_input = if n == 1 {
            self.accumulate_dense(grad, step)
        } else {
            self.accumulate_windows(grad, step)
        };
        self.clear_missing_connections();
        grad_input.map(|g| {
            g.into_shape_with_order((batch, c_in, height, width))
                .expect("[B, C_in, H, W] values")
        })
    }

    /// [`Conv::accumulate`] for a single output position (C5), the batch at once: with `g`
    /// `[B, C_out]` and the inputs `x` `[B, C_in·K·K]`, dL/dW += gᵀ · x and dL/d(input) =
    /// g · W, each one matrix product.
    fn accumulate_dense(&mut self, grad: Array4<f32>, step: &Backward<'_>) -> Option<Array4<f32>> {
        let (batch, c_out, _, _) = grad.dim();
        let g = grad
            .into_shape_with_order((batch, c_out))
            .expect("one position per sample");
        let input = step.input.as_standard_layout();
        let mut x = input
            .view()
            .into_shape_with_order((batch, per_sample(&input)))
            .expect("standard layout")
            .to_owned();
        let mut weight = Self::weight_matrix(&self.weight.value, self.connections.as_ref());
        if step.is_curvature() {
            x.mapv_inplace(|v| v * v);
            weight = weight.mapv(|w| w * w).into();
        }
        let grad_weight = self
            .weight
            .grad
            .view_mut()
            .into_shape_with_order(weight.raw_dim())
            .expect("standard layout");
        matmul(g.t(), x.view(), 1.0, grad_weight);
        self.bias.grad += &g.sum_axis(Axis(0));
        step.wants_input().then(|| {
            let mut grad_input = Array2::zeros(x.raw_dim());
            matmul(g.view(), weight.view(), 0.0, grad_input.view_mut());
            grad_input.insert_axis(Axis(2)).insert_axis(Axis(3))
        })
    }

    /// [`Conv::accumulate`] one sample at a time, for several output positions: the weight
    /// gradient is the correlation of the input with the output gradient
    /// ([`correlate_weight_grad`]), the input gradient its adjoint ([`correlate_adjoint`]).
    fn accumulate_windows(
        &mut self,
        grad: Array4<f32>,
        step: &Backward<'_>,
    ) -> Option<Array4<f32>> {
        let (square, with_input) = (step.is_curvature(), step.wants_input());
        let input = step.input.as_standard_layout();
        let (batch, c_out, oh, ow) = grad.dim();
        let (_, c_in, k, _) = self.weight.value.dim();
        let (height, width) = (oh + k - 1, ow + k - 1);
        let n = positions(height, width, k);
        let input_shape = if with_input {
            (batch, c_in, height, width)
        } else {
            (batch, 0, 0, 0)
        };
        let mut grad_input = Array4::zeros(input_shape);
        let shape = self.conv_shape(height, width);
        // dL/d(sums) at full width; the straddling positions stay zero
        let mut grad_sums = Array2::zeros((c_out, n));
        let mut scratch = Vec::new();
        let mut weight = Self::weight_matrix(&self.weight.value, self.connections.as_ref());
        if square {
            weight = weight.mapv(|w| w * w).into();
        }
        let mut grad_weight = self
            .weight
            .grad
            .view_mut()
            .into_shape_with_order((c_out, c_in * k * k))
            .expect("standard layout");
        let table = flat_table(&self.connections);
        for (b, (g, x)) in grad.outer_iter().zip(input.outer_iter()).enumerate() {
            let full = grad_sums.as_slice_mut().expect("standard layout");
            let g_planes = g.as_slice().expect("standard layout").chunks_exact(oh * ow);
            for (full, g) in full.chunks_exact_mut(n).zip(g_planes) {
                for (full_row, g_row) in full.chunks_mut(width).zip(g.chunks_exact(ow)) {
                    full_row[..ow].copy_from_slice(g_row);
                }
            }
            let x = x.to_slice().expect("standard layout");
            // dL/dW += g · windowsᵀ: the correlation of the input with the output gradient
            let sums = grad_sums.as_slice().expect("standard layout");
            let grad_weight = grad_weight.as_slice_mut().expect("standard layout");
            correlate_weight_grad(x, shape, sums, table, square, grad_weight);
            // dL/d(bias) += Σ over positions
            self.bias.grad += &grad_sums.sum_axis(Axis(1));
            if with_input {
                // each window's gradient goes back to the pixels it overlapped
                let mut grad_input = grad_input.index_axis_mut(Axis(0), b);
                let grad_input = grad_input.as_slice_mut().expect("standard layout");
                let w = weight.as_slice().expect("standard layout");
                correlate_adjoint(sums, shape, w, table, &mut scratch, grad_input);
            }
        }
        with_input.then_some(grad_input)
    }

    /// `[B, C_out, OH, OW]` for `input`, after checking its shape.
    fn out_shape(&self, input: &ArrayView4<f32>) -> Result<[usize; 4]> {
        let [c_out, oh, ow] = self.output_shape(chw(input.shape()))?;
        Ok([input.dim().0, c_out, oh, ow])
    }
}

/// The values per sample of `input` `[B, C, H, W]`, `C·H·W` (also when the batch is empty).
fn per_sample(input: &CowArray<f32, Ix4>) -> usize {
    input.shape()[1..].iter().product()
}

/// A connection table `[C_out, C_in]` as the flat slice the kernels take.
fn flat_table(table: &Option<Array2<bool>>) -> Option<&[bool]> {
    table
        .as_ref()
        .map(|t| t.as_slice().expect("standard layout"))
}

/// Zeroes the `[K, K]` kernels of `kernels` `[C_out, C_in, K, K]` whose entry in `table`
/// `[C_out, C_in]` is false.
fn zero_missing(kernels: &mut Array4<f32>, table: &Array2<bool>) {
    for (mut per_output, row) in kernels.outer_iter_mut().zip(table.outer_iter()) {
        for (mut kernel, &connected) in per_output.outer_iter_mut().zip(row) {
            if !connected {
                kernel.fill(0.0);
            }
        }
    }
}

impl Layer for Conv {
    fn name(&self) -> &'static str {
        "Conv"
    }

    fn output_shape(&self, [c, h, w]: [usize; 3]) -> Result<[usize; 3]> {
        let (c_out, c_in, k, _) = self.weight.value.dim();
        if c != c_in || h < k || w < k {
            return Err(Error::Shape {
                layer: "Conv",
                expected: format!("[{c_in}, H >= {k}, W >= {k}]"),
                got: vec![c, h, w],
            });
        }
        Ok([c_out, h - k + 1, w - k + 1])
    }

    fn forward(&self, input: ArrayView4<f32>, _: Pass) -> Result<Array4<f32>> {
        self.compute(input)
    }

    fn backward(&mut self, step: Backward<'_>) -> Result<Option<Array4<f32>>> {
        let grad = self.activation.of_sum(self, &step)?;
        self.descent.touched();
        Ok(self.accumulate(grad, &step))
    }

    /// The fused pass for one sample through a single output position (C5) without a
    /// connection table, outside a curvature pass: the kernels read once.
    fn backward_descend(&mut self, step: Backward<'_>, lr: f32) -> Option<Result<Descended>> {
        let (batch, _, height, width) = step.input.dim();
        let k = self.kernel();
        let dense = height == k && width == k && self.connections.is_none();
        if batch != 1 || !dense || step.is_curvature() {
            return None;
        }
        let descended = self.activation.of_sum(self, &step).map(|grad| {
            self.descent
                .begin((&self.weight, &self.bias), &grad, &step, lr)
        });
        Some(descended)
    }

    fn end_descend(&mut self, apply: bool) {
        self.descent.end((&mut self.weight, &mut self.bias), apply);
    }

    fn params(&self) -> Vec<ParamRef<'_>> {
        vec![self.weight.as_ref("weight"), self.bias.as_ref("bias")]
    }

    fn config(&self) -> LayerConfig {
        let (out_channels, in_channels, kernel, _) = self.weight.value.dim();
        LayerConfig::Conv {
            in_channels,
            out_channels,
            kernel,
            activation: self.activation,
            connections: self
                .connections
                .as_ref()
                .map(|t| t.iter().copied().collect()),
        }
    }

    fn params_mut(&mut self) -> Vec<ParamMut<'_>> {
        self.descent.touched();
        vec![self.weight.as_mut("weight"), self.bias.as_mut("bias")]
    }

    fn param_count(&self) -> usize {
        let (_, _, k, _) = self.weight.value.dim();
        let kernels = self
            .connections
            .as_ref()
            .map_or(self.weight.value.len() / (k * k), |t| {
                t.iter().filter(|&&c| c).count()
            });
        kernels * k * k + self.bias.value.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{check_curvature, check_gradients, uniform};
    use approx::assert_abs_diff_eq;
    use ndarray::array;

    /// The report's einsum, written as loops: the reference the im2col path must match.
    fn conv_naive(input: &Array4<f32>, weight: &Array4<f32>, bias: &Array1<f32>) -> Array4<f32> {
        let (b, c_in, h, w) = input.dim();
        let (c_out, _, k, _) = weight.dim();
        Array4::from_shape_fn((b, c_out, h - k + 1, w - k + 1), |(n, p, j, x)| {
            let mut sum = bias[p];
            for i in 0..c_in {
                for l in 0..k {
                    for m in 0..k {
                        sum += input[[n, i, j + l, x + m]] * weight[[p, i, l, m]];
                    }
                }
            }
            1.0 / (1.0 + (-sum).exp())
        })
    }

    #[test]
    fn forward_by_hand() {
        // input [[1,2,3],[4,5,6],[7,8,9]], kernel [[1,0],[0,-1]], bias 0.5:
        // window (0,0): 1 - 5 + 0.5 = -3.5; every window gives -4 + 0.5 = -3.5, sigmoid(-3.5) = 0.029312
        let input =
            Array4::from_shape_vec((1, 1, 3, 3), (1..=9).map(|v| v as f32).collect()).unwrap();
        let conv = Conv::from_params(array![[[[1.0, 0.0], [0.0, -1.0]]]], array![0.5]).unwrap();
        let out = conv.forward(input.view(), Pass::Predict).unwrap();
        assert_abs_diff_eq!(
            out,
            Array4::from_elem((1, 1, 2, 2), 0.029312),
            epsilon = 1e-6
        );
    }

    #[test]
    fn forward_matches_naive_loops() {
        // (batch, C_in, H, W, C_out, K) of C1, C3, C5 and odd sizes
        for (b, c_in, h, w, c_out, k) in [
            (1, 1, 32, 32, 6, 5),
            (2, 6, 14, 14, 16, 5),
            (3, 16, 5, 5, 120, 5),
            (2, 3, 7, 6, 4, 3),
        ] {
            let input = uniform((b, c_in, h, w), 1);
            let weight = uniform((c_out, c_in, k, k), 2);
            let bias = uniform(c_out, 3);
            let conv = Conv::from_params(weight.clone(), bias.clone()).unwrap();
            let expected = conv_naive(&input, &weight, &bias);
            assert_abs_diff_eq!(
                conv.forward(input.view(), Pass::Predict).unwrap(),
                expected,
                epsilon = 1e-5
            );
            assert_abs_diff_eq!(
                conv.forward(input.view(), Pass::Predict).unwrap(),
                expected,
                epsilon = 1e-5
            );
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(3);
        // (C_in, C_out, K, input [B, C, H, W], activation)
        for (c_in, c_out, k, shape, act) in [
            (1, 2, 3, [1, 1, 6, 5], Activation::Sigmoid),
            (3, 4, 2, [2, 3, 4, 4], Activation::Sigmoid),
            (2, 3, 3, [1, 2, 5, 5], Activation::ScaledTanh),
            (2, 3, 3, [2, 2, 5, 5], Activation::Identity),
            // one output position (C5), one sample and a batch
            (3, 4, 3, [1, 3, 3, 3], Activation::Sigmoid),
            (3, 4, 3, [3, 3, 3, 3], Activation::ScaledTanh),
        ] {
            let mut conv = Conv::new(c_in, c_out, k, &mut rng)
                .unwrap()
                .with_activation(act);
            check_gradients(&mut conv, shape, 11);
        }
    }

    #[test]
    fn curvature_matches_the_gauss_newton_diagonal() {
        let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(5);
        for (c_in, c_out, k, shape, act) in [
            (2, 3, 3, [2, 2, 5, 5], Activation::ScaledTanh),
            (1, 2, 3, [1, 1, 6, 5], Activation::Sigmoid),
            (3, 4, 3, [2, 3, 3, 3], Activation::ScaledTanh),
        ] {
            let mut conv = Conv::new(c_in, c_out, k, &mut rng)
                .unwrap()
                .with_activation(act);
            check_curvature(&mut conv, shape, 21);
        }
        for shape in [[1, 4, 5, 5], [2, 4, 3, 3]] {
            let mut partial = Conv::new(4, 3, 3, &mut rng)
                .unwrap()
                .with_connections(table())
                .unwrap()
                .with_activation(Activation::ScaledTanh);
            check_curvature(&mut partial, shape, 22);
            check_gradients(&mut partial, shape, 23);
        }
    }

    #[test]
    fn a_batch_through_the_lanes_gives_each_samples_bits_alone() {
        // rows of 1, 10, 13 and 17 outputs (blocks of 1, 5 + 5, 4 + 4 + 5 and 5 + 6 + 6), each
        // with enough straddling positions for the lanes to pay; three maps (a pair and one
        // alone) through a table, seven without (in the AVX-512 build a group of four, then a
        // pair and one alone); 19 samples: two groups of eight, then three one at a time
        let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(7);
        for (c_in, c_out, h, w, k, table) in [
            (4, 3, 5, 3, 3, Some(table())),
            (4, 3, 14, 14, 5, Some(table())),
            (2, 7, 9, 19, 7, None),
            (4, 3, 11, 25, 9, Some(table())),
        ] {
            let mut conv = Conv::new(c_in, c_out, k, &mut rng).unwrap();
            if let Some(table) = table {
                conv = conv.with_connections(table).unwrap();
            }
            let out_shape = [19, c_out, h + 1 - k, w + 1 - k];
            assert!(conv.lanes_pay(out_shape), "{c_in} {h} {w}");
            let input = uniform((19, c_in, h, w), 8);
            let batch = conv.forward(input.view(), Pass::Predict).unwrap();
            for (b, x) in input.outer_iter().enumerate() {
                let alone = conv.forward(x.insert_axis(Axis(0)), Pass::Predict).unwrap();
                let bits = |v: &f32| v.to_bits();
                let row: Vec<u32> = batch.index_axis(Axis(0), b).iter().map(bits).collect();
                assert_eq!(
                    row,
                    alone.iter().map(bits).collect::<Vec<_>>(),
                    "{c_in} {h} {w} {b}"
                );
            }
        }
    }

    /// A 4 -> 3 table with maps seeing 1, 2 and all 4 inputs.
    fn table() -> Array2<bool> {
        array![
            [true, false, false, false],
            [false, true, true, false],
            [true, true, true, true]
        ]
    }

    #[test]
    fn partial_connections_train_only_connected_kernels() {
        let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(4);
        let mut conv = Conv::new(4, 3, 3, &mut rng)
            .unwrap()
            .with_connections(table())
            .unwrap()
            .with_activation(Activation::ScaledTanh);
        check_gradients(&mut conv, [2, 4, 5, 5], 12);
        // (1 + 2 + 4) kernels of 9, plus 3 biases
        assert_eq!(conv.param_count(), 7 * 9 + 3);
        let input = uniform((1, 4, 5, 5), 5);
        let out = conv.forward(input.view(), Pass::Predict).unwrap();
        crate::testing::backprop(&mut conv, input.view(), out.view(), crate::Mode::Full).unwrap();
        let (weight, grad) = (&conv.weight.value, &conv.weight.grad);
        for ((p, i), &connected) in table().indexed_iter() {
            let kernel = weight.slice(ndarray::s![p, i, .., ..]);
            let kernel_grad = grad.slice(ndarray::s![p, i, .., ..]);
            assert_eq!(kernel.iter().all(|&w| w == 0.0), !connected, "{p} {i}");
            assert_eq!(kernel_grad.iter().all(|&g| g == 0.0), !connected, "{p} {i}");
        }
    }

    #[test]
    fn lecun_init_scales_by_each_maps_fan_in() {
        let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(6);
        let conv = Conv::new(4, 3, 3, &mut rng)
            .unwrap()
            .with_connections(table())
            .unwrap()
            .with_init(Init::LeCun, &mut rng);
        for (p, inputs) in [(0, 1.0), (1, 2.0), (2, 4.0)] {
            let bound = 2.4 / (inputs * 9.0);
            let kernel = conv.weight.value.index_axis(Axis(0), p);
            assert!(kernel.iter().all(|w| w.abs() < bound));
            assert!(kernel.iter().any(|w| w.abs() > bound / 2.0));
            assert!(conv.bias.value[p].abs() < bound);
        }
        let he = Conv::new(4, 3, 3, &mut rng)
            .unwrap()
            .with_init(Init::He, &mut rng);
        assert!(he.bias.value.iter().all(|&b| b == 0.0));
        assert!(
            he.weight
                .value
                .iter()
                .all(|w| w.abs() < (6.0f32 / 36.0).sqrt())
        );
    }

    #[test]
    fn bad_connection_tables_are_errors() {
        let conv = || {
            Conv::new(
                4,
                3,
                3,
                &mut rand::rngs::Xoshiro256PlusPlus::seed_from_u64(0),
            )
        };
        assert!(matches!(
            conv()
                .unwrap()
                .with_connections(Array2::from_elem((3, 3), true)),
            Err(Error::Shape { .. })
        ));
        let mut empty_row = table();
        empty_row.row_mut(1).fill(false);
        assert!(matches!(
            conv().unwrap().with_connections(empty_row),
            Err(Error::InvalidArgument { .. })
        ));
    }

    #[test]
    fn bad_shapes_are_errors() {
        let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(0);
        let mut conv = Conv::new(1, 6, 5, &mut rng).unwrap();
        assert!(matches!(
            conv.forward(Array4::zeros((1, 2, 32, 32)).view(), Pass::Predict),
            Err(Error::Shape { .. })
        ));
        assert!(matches!(
            conv.forward(Array4::zeros((1, 1, 4, 32)).view(), Pass::Predict),
            Err(Error::Shape { .. })
        ));
        let (input, grad) = (Array4::zeros((1, 1, 32, 32)), Array4::zeros((1, 6, 27, 28)));
        assert!(matches!(
            crate::testing::backprop(&mut conv, input.view(), grad.view(), crate::Mode::Full),
            Err(Error::Shape { .. })
        ));
        assert!(Conv::from_params(Array4::zeros((2, 1, 3, 2)), Array1::zeros(2)).is_err());
        assert!(Conv::from_params(Array4::zeros((2, 1, 3, 3)), Array1::zeros(3)).is_err());
        assert!(Conv::new(1, 0, 5, &mut rng).is_err());
    }

    use rand::SeedableRng;
}
