//! The numeric inner loops: sigmoid and scaled tanh over a slice, and matrix products that
//! pick a loop fitted to their shape.
//!
//! Each loop is written once, in plain Rust, and compiled twice: as is, and with AVX2 and FMA
//! enabled, the second chosen at run time when the processor has them. The second fuses its
//! multiply-adds ([`madd`]), as matrixmultiply's kernels do on such a processor; the first
//! fuses them only where the baseline target has the instruction. The exponential's loops
//! (sigmoid, scaled tanh) and the convolutions' forward sums have a third build with AVX-512,
//! which gives the AVX2 build's bits. One machine always runs the same build, so its results
//! do not change from run to run.

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2};

pub(crate) mod lanes;
pub(crate) mod window;

use window::{ConvShape, Taps};

/// Defines `pub(crate) fn $name` that runs `$body` compiled for AVX2 + FMA when
/// [`native`] says so, and for the baseline target otherwise. The body sees a `const FUSED:
/// bool`, which it passes to [`madd`]: true in the AVX2 + FMA build, and in the baseline
/// build only where the baseline has a fused multiply-add; and a `const WIDE: bool`, true in
/// the AVX-512 build below, whose 32 registers let a loop keep more sums in flight.
///
/// `multiversion! { wide ... }` adds a build with AVX-512 (F and VL) too, run first when
/// [`native_wide`] says so: for the loops that gain from registers twice as wide (the
/// exponential's, the fused dense step's, the dense products of a few samples) or twice as
/// many (the convolutions' blocks of sums), as others do not (on a Zen 4, whose AVX-512 units
/// are 256 bits wide, most ran slower). Its operations are those of the AVX2 build, in blocks
/// that change no value, so it gives the same bits.
macro_rules! multiversion {
    (wide $($item:tt)*) => {
        multiversion! { @build [avx512 "avx2,fma,avx512f,avx512vl" native_wide true] $($item)* }
    };
    (@build [$($wide:tt)*] $(#[$doc:meta])*
        fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)? $body:block) => {
        $(#[$doc])*
        pub(crate) fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn generic<const FUSED: bool, const WIDE: bool>($($arg: $ty),*) $(-> $ret)? $body

            #[cfg(target_arch = "x86_64")]
            {
                multiversion!(@tier [$($wide)*] ($($arg: $ty),*) $(-> $ret)?);
                multiversion!(@tier [avx2 "avx2,fma" native false] ($($arg: $ty),*) $(-> $ret)?);
            }
            generic::<{ $crate::kernels::BASELINE_FMA }, false>($($arg),*)
        }
    };
    (@tier [] $($signature:tt)*) => {};
    (@tier [$tier:ident $features:literal $check:ident $wide:literal]
        ($($arg:ident: $ty:ty),*) $(-> $ret:ty)?) => {
        if $crate::kernels::$check() {
            #[target_feature(enable = $features)]
            fn $tier($($arg: $ty),*) $(-> $ret)? {
                generic::<true, $wide>($($arg),*)
            }
            // SAFETY: the processor has the features `$tier` was compiled for.
            return unsafe { $tier($($arg),*) };
        }
    };
    ($($item:tt)*) => {
        multiversion! { @build [] $($item)* }
    };
}

/// Whether the baseline target has a fused multiply-add instruction (aarch64 always has;
/// x86-64 only when built for a processor with FMA).
pub(crate) const BASELINE_FMA: bool = cfg!(any(target_feature = "fma", target_arch = "aarch64"));

/// Whether the kernels run their AVX2 + FMA build: when the processor has both, unless the
/// environment variable `LENET5_PORTABLE` is set, which makes the baseline build run instead
/// so that the benchmarks can measure it on the same machine.
#[cfg(target_arch = "x86_64")]
pub(crate) fn native() -> bool {
    static NATIVE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *NATIVE.get_or_init(|| {
        std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::env::var_os("LENET5_PORTABLE").is_none()
    })
}

/// Whether the kernels built `wide` run their AVX-512 build: when [`native`] and the processor
/// has AVX-512F and VL.
#[cfg(target_arch = "x86_64")]
pub(crate) fn native_wide() -> bool {
    static WIDE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *WIDE.get_or_init(|| {
        native()
            && std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512vl")
    })
}

/// Whether the kernels' multiply-adds are fused, one rounding each, as they are on this
/// processor.
#[cfg(test)]
pub(crate) fn fused() -> bool {
    #[cfg(target_arch = "x86_64")]
    if native() {
        return true;
    }
    BASELINE_FMA
}

/// `a · b + c`, fused (one rounding) when `FUSED`; otherwise a multiply and an add, which
/// vectorise where a fused multiply-add without the instruction would call a software `fmaf`.
#[inline(always)]
fn madd<const FUSED: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FUSED { a.mul_add(b, c) } else { a * b + c }
}

pub(crate) use multiversion;

/// `body` once for each `t` in `0..n` (at most 16), written out one after another rather than
/// as a loop: a kernel's sums, indexed by `t`, then stay in registers whatever the compiler
/// decides about unrolling (with `lto = true`, it kept C3's block of sums in memory as a loop
/// over `t`, and evaluation ran at half speed). `n` is a constant, so the `t`s past it go.
macro_rules! each_of {
    ($n:expr, |$t:ident| $body:block) => {{
        const { assert!($n <= 16, "at most 16") };
        each_of!(@ $n, $t, $body, 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15)
    }};
    (@ $n:expr, $t:ident, $body:block, $($i:literal)*) => {{
        $(if $i < $n {
            let $t: usize = $i;
            $body
        })*
    }};
}

pub(crate) use each_of;

/// Partial sums in [`dots`]: four AVX registers of f32, so that four additions are in flight
/// at once instead of each waiting for the one before.
const LANES: usize = 32;

multiversion! { wide
    /// `values[i] = 1 / (1 + e^-values[i])`, as `q = 1 / (1 + t)` for `v >= 0` and `t · q`
    /// otherwise, with `t = e^-|v|` ([`through_exp`]); within 2 ulp.
    fn sigmoid_in_place(values: &mut [f32]) {
        through_exp::<FUSED, WIDE>(values, 1.0, |v, t, q| if v >= 0.0 { q } else { t * q });
    }
}

multiversion! { wide
    /// `values[i] = a · tanh(s · values[i])`, as `±a · (1 - t) · q` with `t = e^-|2s·v|` and
    /// `q = 1 / (1 + t)` ([`through_exp`]); the absolute error stays below 3e-7 · `a`.
    fn scaled_tanh_in_place(values: &mut [f32], a: f32, s: f32) {
        through_exp::<FUSED, WIDE>(values, 2.0 * s, |z, t, q| {
            let y = a * ((1.0 - t) * q);
            if z >= 0.0 { y } else { -y }
        });
    }
}

/// `values[i] = after(z, t, 1 / (1 + t))` with `z = scale · values[i]` and `t = e^-|z|`, in
/// blocks of four registers ([`exp_blocks`]).
///
/// With `t` in (0, 1], `1 + t` lies in (1, 2], where [`reciprocal_1_to_2`] needs no division
/// (which took half the sigmoid's time), and no value on the way is subnormal.
#[inline(always)]
fn through_exp<const FUSED: bool, const WIDE: bool>(
    values: &mut [f32],
    scale: f32,
    after: impl Fn(f32, f32, f32) -> f32,
) {
    let each = |z: f32, t: f32| after(z, t, reciprocal_1_to_2::<FUSED>(1.0 + t));
    if WIDE {
        exp_blocks::<FUSED, 64>(values, scale, each);
    } else {
        exp_blocks::<FUSED, 32>(values, scale, each);
    }
}

/// [`through_exp`], `B` values at a time: four registers, whose dependency chains then
/// overlap. (Measured with AVX2: 16 values no faster than one register at a time, 64 and 128
/// no faster than 32; with AVX-512, 64 1.5 to 2 % faster than 32 in evaluation.) The block
/// changes no value.
#[inline(always)]
fn exp_blocks<const FUSED: bool, const B: usize>(
    values: &mut [f32],
    scale: f32,
    each: impl Fn(f32, f32) -> f32,
) {
    let mut chunks = values.chunks_exact_mut(B);
    for chunk in chunks.by_ref() {
        exp_block::<FUSED, B>(chunk, scale, &each);
    }
    // the rest sixteen at a time, the last sixteen padded: every value takes the same steps
    // in a register as one at a time, at a sixteenth of the work
    for rest in chunks.into_remainder().chunks_mut(REST) {
        let mut padded = [0.0; REST];
        padded[..rest.len()].copy_from_slice(rest);
        exp_block::<FUSED, REST>(&mut padded, scale, &each);
        rest.copy_from_slice(&padded[..rest.len()]);
    }
}

/// Values per block of what [`exp_blocks`] leaves after its whole blocks.
const REST: usize = 16;

/// One block of [`exp_blocks`]: `chunk` (`B` values) through `each`.
#[inline(always)]
fn exp_block<const FUSED: bool, const B: usize>(
    chunk: &mut [f32],
    scale: f32,
    each: &impl Fn(f32, f32) -> f32,
) {
    let mut t = [0.0; B];
    t.iter_mut()
        .zip(&*chunk)
        .for_each(|(t, &v)| *t = -(scale * v).abs());
    exp_in_place::<FUSED, B>(&mut t);
    chunk
        .iter_mut()
        .zip(t)
        .for_each(|(v, t)| *v = each(scale * *v, t));
}

/// `1 / d` for `d` in [1, 2] without a division: Newton-Raphson from the quadratic
/// `70/33 - 48/33 · d + 32/99 · d²` (relative error at most 1/99, the least a quadratic
/// reaches there), whose every step squares the relative error: 1/99, 1.0e-4, 1.0e-8 after
/// two. The last step's own rounding leaves the result within 1 ulp.
#[inline(always)]
fn reciprocal_1_to_2<const FUSED: bool>(d: f32) -> f32 {
    let mut y = madd::<FUSED>(madd::<FUSED>(32.0 / 99.0, d, -48.0 / 33.0), d, 70.0 / 33.0);
    for _ in 0..2 {
        let e = madd::<FUSED>(-d, y, 1.0);
        y = madd::<FUSED>(y, e, y);
    }
    y
}

/// `e^x` to within 2 ulp for `x` in [-87.3, 88] ([`exp_in_place`] of one value).
#[cfg(test)]
fn exp<const FUSED: bool>(x: f32) -> f32 {
    let mut x = [x];
    exp_in_place::<FUSED, 1>(&mut x);
    x[0]
}

/// `x[i] = e^x[i]` to within 2 ulp for `x[i]` in [-87.3, 88] (Cephes' `expf`: `2^n · p(r)`
/// with `x = n·ln 2 + r`, |r| <= ln(2)/2, and a degree-7 polynomial `p`). Held at e^-87.3
/// below -87.3, so it never returns a subnormal (nor zero); NaN stays NaN. Meant for
/// [`through_exp`]'s `-|z|`: above 88 it does not hold. Branch-free, so that it vectorises;
/// each step goes over the whole block before the next, so that the steps of different
/// registers interleave instead of each register waiting for its own last step.
#[inline(always)]
fn exp_in_place<const FUSED: bool, const W: usize>(x: &mut [f32; W]) {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two so that n · LN2_HI is exact
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 · 2^23 + 127: added to x · log2(e), it rounds that to the integer n and leaves
    // n + 127 in the low mantissa bits, whence a shift makes 2^n (no float-to-int
    // conversion, which would not vectorise)
    const SHIFT: f32 = 12_583_039.0;
    // plain loops rather than `array::from_fn` or `map`, which the compiler may leave as
    // calls out of the AVX2 build
    let (mut n, mut r, mut p) = ([0.0f32; W], [0.0f32; W], [0.0f32; W]);
    for i in 0..W {
        // the comparison false for NaN, which so passes through
        let v = if x[i] < -87.3 { -87.3 } else { x[i] };
        n[i] = madd::<FUSED>(v, LOG2E, SHIFT);
        let whole = n[i] - SHIFT;
        r[i] = madd::<FUSED>(-whole, LN2_LO, madd::<FUSED>(-whole, LN2_HI, v));
    }
    for i in 0..W {
        p[i] = madd::<FUSED>(1.987_569_1e-4, r[i], 1.398_199_9e-3);
    }
    for c in [8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 0.5] {
        for i in 0..W {
            p[i] = madd::<FUSED>(p[i], r[i], c);
        }
    }
    for i in 0..W {
        let y = madd::<FUSED>(madd::<FUSED>(p[i], r[i], 1.0), r[i], 1.0);
        x[i] = y * f32::from_bits(n[i].to_bits() << 23);
    }
}

/// Rows per group of [`dots`].
const DOT_ROWS: usize = 8;

/// `Σ a[i] · b[i]` for each row `a` of `rows` (at most [`DOT_ROWS`], all as long as `b`),
/// each summed in [`LANES`] interleaved partial sums (so the loop vectorises), which are then
/// added in lane order, and then the products past the last whole chunk one after another: a
/// fixed order, so the result does not depend on the instruction set. The additions after the
/// loop go side by side, one register for all the rows, so that each waits only for its own
/// row's addition before it, not for the other rows'.
#[inline(always)]
fn dots<'a>(rows: impl Iterator<Item = &'a [f32]>, b: &[f32]) -> [f32; DOT_ROWS] {
    // partial[l][r]: lane l of row r; tail[j][r]: row r's product j past the whole chunks
    let mut partial = [[0.0f32; DOT_ROWS]; LANES];
    let mut tail = [[0.0f32; DOT_ROWS]; LANES];
    let b_chunks = b.chunks_exact(LANES);
    let tail_len = b_chunks.remainder().len();
    for (r, a) in rows.take(DOT_ROWS).enumerate() {
        let a_chunks = a.chunks_exact(LANES);
        for (tail, (x, y)) in tail
            .iter_mut()
            .zip(a_chunks.remainder().iter().zip(b_chunks.remainder()))
        {
            tail[r] = x * y;
        }
        // a register's eight lanes at a time, each a chain of its own
        let mut acc = [[0.0f32; 8]; LANES / 8];
        for (x, y) in a_chunks.zip(b_chunks.clone()) {
            each_of!(LANES / 8, |c| {
                for l in 0..8 {
                    acc[c][l] += x[8 * c + l] * y[8 * c + l];
                }
            });
        }
        for (partial, acc) in partial.iter_mut().zip(acc.as_flattened()) {
            partial[r] = *acc;
        }
    }
    // both start as `Iterator::sum` does, so that each row's sum is bit for bit
    // `acc.iter().sum::<f32>() + products.sum::<f32>()`
    let (mut sums, mut tails) = ([-0.0f32; DOT_ROWS], [-0.0f32; DOT_ROWS]);
    for (sums, terms) in [(&mut sums, &partial[..]), (&mut tails, &tail[..tail_len])] {
        for terms in terms {
            for (sum, t) in sums.iter_mut().zip(terms) {
                *sum += t;
            }
        }
    }
    for (sum, tail) in sums.iter_mut().zip(tails) {
        *sum += tail;
    }
    sums
}

multiversion! {
    /// `y = beta · y + m · v` for `m` `[rows, cols]` with rows or columns contiguous, `v` `[cols]`,
    /// `y` `[rows]`: dot products of the rows, or a sum of scaled columns.
    fn gemv(m: ArrayView2<f32>, v: ArrayView1<f32>, beta: f32, y: ArrayViewMut1<f32>) {
        let mut y = y;
        let v = v.as_standard_layout();
        let v = v.as_slice().expect("standard layout");
        if beta == 0.0 {
            y.fill(0.0);
        } else if beta != 1.0 {
            y *= beta;
        }
        if m.is_standard_layout() {
            let mut rows = m
                .rows()
                .into_iter()
                .map(|row| row.to_slice().expect("rows are contiguous"))
                .peekable();
            let mut y = y.iter_mut();
            while rows.peek().is_some() {
                for (out, sum) in y.by_ref().take(DOT_ROWS).zip(dots(rows.by_ref(), v)) {
                    *out += sum;
                }
            }
        } else {
            let mut acc = y.to_owned();
            let out = acc.as_slice_mut().expect("fresh array");
            for (col, &s) in m.columns().into_iter().zip(v) {
                let col = col.to_slice().expect("columns are contiguous");
                for (o, &c) in out.iter_mut().zip(col) {
                    *o += s * c;
                }
            }
            y.assign(&acc);
        }
    }
}

/// Values per chunk of the row loops of [`sums_of_2x2`], [`max_of_2x2`] and its adjoint: one
/// AVX register. A row's last chunk is moved back to end at the row's end, so that short rows
/// (S2's 14 values in LeNet-5) need no one-value-at-a-time tail; the values it writes twice
/// get the same value both times.
const CHUNK: usize = 8;

/// `body` with `(x, n)` for every chunk `x..x + n` of `0..len`: chunks of [`CHUNK`] (the last
/// moved back) when `len` holds one, else one chunk of `len`. A macro rather than a function
/// taking a closure, so that the body is always compiled in place, twice: once with `n` the
/// constant [`CHUNK`], which lets its loops vectorise, and once for short rows.
macro_rules! in_chunks {
    ($len:expr, |$x:ident, $n:ident| $body:block) => {{
        let len: usize = $len;
        if len < CHUNK {
            let ($x, $n) = (0, len);
            $body
        } else {
            let mut start = 0;
            while start < len {
                let ($x, $n) = (start.min(len - CHUNK), CHUNK);
                $body
                start += CHUNK;
            }
        }
    }};
}

/// `out[j, x] = f(top, bottom)` for the pairs of the 2x2 block at `(j, x)` of `input`
/// `[2·OH, width]`, for `out` `[OH, OW]`: [`CHUNK`] blocks at a time, so that the loop
/// vectorises.
#[inline(always)]
fn each_2x2(
    input: &[f32],
    width: usize,
    out: &mut [f32],
    ow: usize,
    f: impl Fn([f32; 2], [f32; 2]) -> f32,
) {
    for (rows, out) in input.chunks_exact(2 * width).zip(out.chunks_exact_mut(ow)) {
        let (top, bottom) = rows.split_at(width);
        in_chunks!(ow, |x, len| {
            let (top, bottom) = (&top[2 * x..2 * (x + len)], &bottom[2 * x..2 * (x + len)]);
            for ((o, t), b) in out[x..x + len]
                .iter_mut()
                .zip(top.chunks_exact(2))
                .zip(bottom.chunks_exact(2))
            {
                *o = f([t[0], t[1]], [b[0], b[1]]);
            }
        });
    }
}

multiversion! {
    /// `out[j, x]` = the sum of the 2x2 block at `(j, x)` of `input` `[2·OH, width]`, for
    /// `out` `[OH, OW]`, as subsampling's general loop adds it: each row's pair, onto +0, top
    /// then bottom.
    fn sums_of_2x2(input: &[f32], width: usize, out: &mut [f32], ow: usize) {
        each_2x2(input, width, out, ow, |t, b| (0.0 + (t[0] + t[1])) + (b[0] + b[1]));
    }
}

multiversion! {
    /// [`sums_of_2x2`] with each sum `s` put as `bias + coef · s` (rounded after the product,
    /// then after the sum): subsampling's weighted sums, in the same pass.
    fn weighted_sums_of_2x2(input: &[f32], width: usize, out: &mut [f32], ow: usize, coef: f32, bias: f32) {
        each_2x2(input, width, out, ow, |t, b| bias + coef * ((0.0 + (t[0] + t[1])) + (b[0] + b[1])));
    }
}

multiversion! {
    /// `out[j, x]` = the largest value of the 2x2 block at `(j, x)` of `input` `[2·OH, width]`,
    /// for `out` `[OH, OW]`, as max pooling's general loop takes it: `f32::max` from -∞, row
    /// by row.
    fn max_of_2x2(input: &[f32], width: usize, out: &mut [f32], ow: usize) {
        each_2x2(input, width, out, ow, |t, b| {
            f32::NEG_INFINITY.max(t[0]).max(t[1]).max(b[0]).max(b[1])
        });
    }
}

/// [`max_of_2x2_adjoint`] for up to [`CHUNK`] blocks side by side: `rows` are the blocks'
/// top and bottom values, `grad_rows` their gradients, `grad` one value per block. The blocks
/// are copied into register-sized arrays (a short chunk padded), and each step runs over all
/// of them before the next, so that the steps vectorise.
#[inline(always)]
fn max_of_2x2_adjoint_chunk(rows: [&[f32]; 2], grad: &[f32], grad_rows: [&mut [f32]; 2]) {
    let len = grad.len();
    let ([mut t, mut b], mut g) = ([[0.0; 2 * CHUNK]; 2], [0.0; CHUNK]);
    t[..2 * len].copy_from_slice(rows[0]);
    b[..2 * len].copy_from_slice(rows[1]);
    g[..len].copy_from_slice(grad);
    // the first value equal to the largest is the first strict maximum
    let mut at = [0u32; CHUNK];
    for (i, at) in at.iter_mut().enumerate() {
        let [t0, t1, b0, b1] = [t[2 * i], t[2 * i + 1], b[2 * i], b[2 * i + 1]];
        let largest = f32::NEG_INFINITY.max(t0).max(t1).max(b0).max(b1);
        let later = if b0 == largest { 2 } else { 3 };
        let later = if t1 == largest { 1 } else { later };
        *at = if t0 == largest || largest == f32::NEG_INFINITY {
            0
        } else {
            later
        };
    }
    for (row, grad_row) in grad_rows.into_iter().enumerate() {
        let mut shares = [0.0; 2 * CHUNK];
        for (k, share) in shares.iter_mut().enumerate() {
            let taken = at[k / 2] == (2 * row + k % 2) as u32;
            *share = if taken { 0.0 + g[k / 2] } else { 0.0 };
        }
        grad_row.copy_from_slice(&shares[..2 * len]);
    }
}

multiversion! {
    /// The adjoint of [`max_of_2x2`]: `grad_input` `[2·OH, width]` gets `grad[j, x]` (`grad`
    /// `[OH, OW]`) at the first largest value of the 2x2 block at `(j, x)` of `input` (row by
    /// row; at the block's top left when none is above -∞), as max pooling's general loop
    /// adds it to zero, and zero at the block's other values. Every value of a block is
    /// written, so a block of two chunks (the last moved back) gets the same values twice.
    fn max_of_2x2_adjoint(input: &[f32], width: usize, grad: &[f32], ow: usize, grad_input: &mut [f32]) {
        let rows = input.chunks_exact(2 * width).zip(grad_input.chunks_exact_mut(2 * width));
        for ((rows, grad_rows), grad) in rows.zip(grad.chunks_exact(ow)) {
            let (top, bottom) = rows.split_at(width);
            let (grad_top, grad_bottom) = grad_rows.split_at_mut(width);
            in_chunks!(ow, |x, len| {
                let span = 2 * x..2 * (x + len);
                max_of_2x2_adjoint_chunk(
                    [&top[span.clone()], &bottom[span.clone()]],
                    &grad[x..x + len],
                    [&mut grad_top[span.clone()], &mut grad_bottom[span]],
                );
            });
        }
    }
}

/// Positions per block of [`sum_of_runs`] for a build: six AVX registers of partial sums per
/// row in the AVX2 build, enough independent chains of fused multiply-adds to hide their
/// latency, and with two rows at a time few enough to stay in its sixteen registers while
/// every term passes over them; twelve in the AVX-512 build, whose 32 registers hold them,
/// and which then loads the terms half as often.
const fn block(wide: bool) -> usize {
    if wide { 96 } else { 48 }
}

/// Where [`sum_block`] puts the sums `[M][L]` of its rows at positions `q..q + L`.
trait Sink<const M: usize> {
    /// Takes row `j`'s sums `sums[j]` for positions `q..q + L`.
    fn put<const L: usize>(&mut self, q: usize, sums: &[[f32; L]; M]);
}

/// Every position: row `j`'s sums at `q..q + L` of `self[j]`.
impl<const M: usize> Sink<M> for [&mut [f32]; M] {
    #[inline(always)]
    fn put<const L: usize>(&mut self, q: usize, sums: &[[f32; L]; M]) {
        for (dst, sums) in self.iter_mut().zip(sums) {
            dst[q..q + L].copy_from_slice(sums);
        }
    }
}

/// A convolution's output maps `[OH, OW]`, one per row of sums at full width (`width`
/// positions to a row): each takes its row's sums at the valid positions, plus its bias,
/// straight from the registers.
struct ValidPositions<'a, const M: usize> {
    maps: [&'a mut [f32]; M],
    bias: [f32; M],
    width: usize,
    ow: usize,
}

impl<const M: usize> Sink<M> for ValidPositions<'_, M> {
    #[inline(always)]
    fn put<const L: usize>(&mut self, q: usize, sums: &[[f32; L]; M]) {
        let (width, ow) = (self.width, self.ow);
        let mut p = q;
        while p < q + L {
            let (row, x) = (p / width, p % width);
            if x < ow {
                let len = (ow - x).min(q + L - p);
                for ((map, sums), b) in self.maps.iter_mut().zip(sums).zip(self.bias) {
                    let out = &mut map[row * ow + x..][..len];
                    for (y, &s) in out.iter_mut().zip(&sums[p - q..][..len]) {
                        *y = s + b;
                    }
                }
            }
            p = (row + 1) * width;
        }
    }
}

/// `dst` ← `Σ_terms c[j] · src[offset + q + t]` for rows `j < M` and `t < L` ([`Sink`]):
/// for each row, one fused multiply-add after another in term order, from +0. The rows share
/// each load of `src`.
#[inline(always)]
fn sum_block<const FUSED: bool, const M: usize, const L: usize>(
    src: &[f32],
    terms: &[(usize, [f32; M])],
    q: usize,
    dst: &mut impl Sink<M>,
) {
    let mut acc = [[0.0f32; L]; M];
    for &(offset, c) in terms {
        let x = &src[offset + q..offset + q + L];
        for t in 0..L {
            for j in 0..M {
                acc[j][t] = madd::<FUSED>(c[j], x[t], acc[j][t]);
            }
        }
    }
    // put from a copy: a sink that indexes the sums by run would otherwise keep `acc` in
    // memory through the loop (stored on every term)
    let sums = acc;
    dst.put(q, &sums);
}

/// [`sum_block`] for every position `q < n` of the `M` rows. Positions go `B` at a time; the
/// last, partial block becomes the smallest block that fits, moved back to end at the last
/// position (the positions it computes twice get the same sums).
#[inline(always)]
fn sum_of_runs<const FUSED: bool, const M: usize, const B: usize>(
    src: &[f32],
    terms: &[(usize, [f32; M])],
    n: usize,
    dst: &mut impl Sink<M>,
) {
    let mut q = 0;
    while q + B <= n {
        sum_block::<FUSED, M, B>(src, terms, q, dst);
        q += B;
    }
    match n - q {
        0 => {}
        rest if rest <= 8 && n >= 8 => sum_block::<FUSED, M, 8>(src, terms, n - 8, dst),
        rest if rest <= 24 && n >= 24 => sum_block::<FUSED, M, 24>(src, terms, n - 24, dst),
        rest if rest <= 48 && n >= 48 && B > 48 => {
            sum_block::<FUSED, M, 48>(src, terms, n - 48, dst)
        }
        _ if n >= B => sum_block::<FUSED, M, B>(src, terms, n - B, dst),
        _ => (q..n).for_each(|q| sum_block::<FUSED, M, 1>(src, terms, q, dst)),
    }
}

/// [`sum_of_runs`] in the blocks of the build ([`block`]).
#[inline(always)]
fn sum_of_runs_in<const FUSED: bool, const WIDE: bool, const M: usize>(
    src: &[f32],
    terms: &[(usize, [f32; M])],
    n: usize,
    dst: &mut impl Sink<M>,
) {
    if WIDE {
        sum_of_runs::<FUSED, M, { block(true) }>(src, terms, n, dst);
    } else {
        sum_of_runs::<FUSED, M, { block(false) }>(src, terms, n, dst);
    }
}

multiversion! { wide
    /// A direct convolution: `out` `[c_out, OH, OW]` ← the correlation of a flat input
    /// `[c_in, height, width]` with the kernels whose `taps` are given, plus `bias`, where
    /// `widths` is `(width, OW)`. The sums run at full width, `(OH - 1) · width + OW`
    /// positions, each block of them put at its valid positions from the registers
    /// ([`ValidPositions`]). Output maps go two at a time (the pairs of `taps`), sharing the
    /// loads of the input; in the AVX-512 build, whose 32 registers hold four maps' sums, two
    /// pairs go together when their taps read the same runs ([`Taps::fours`]: C1's, or C3's
    /// pairs that see the same inputs), so that each load feeds twice as many multiply-adds.
    ///
    /// Each sum is one fused multiply-add after another in `(i, l, m)` order from +0, then the
    /// bias added: bit for bit what the product `weight · im2col(input)` gives from
    /// matrixmultiply when its inner dimension fits one block (`c_in·k·k <= 256`), without
    /// copying the windows, plus the bias. (Adding `+0 · x` changes no partial sum, since a
    /// chain started at +0 is never -0; so skipping a missing kernel, or reading it as zero,
    /// gives the same bits.)
    fn correlate(input: &[f32], widths: (usize, usize), taps: &Taps, bias: &[f32], out: &mut [f32]) {
        let (width, ow) = widths;
        let plane = out.len() / bias.len();
        let n = (plane / ow - 1) * width + ow;
        if WIDE {
            for (maps, four) in &taps.fours {
                let mut dst = valid_positions(out, plane, *maps, bias, widths);
                sum_of_runs_in::<FUSED, WIDE, 4>(input, four, n, &mut dst);
            }
        }
        for (maps, pair) in taps.pairs_beside_fours(WIDE) {
            let mut dst = valid_positions(out, plane, *maps, bias, widths);
            sum_of_runs_in::<FUSED, WIDE, 2>(input, pair, n, &mut dst);
        }
        if let Some((last, taps)) = &taps.last {
            let mut dst = valid_positions(out, plane, [*last], bias, widths);
            sum_of_runs_in::<FUSED, WIDE, 1>(input, taps, n, &mut dst);
        }
    }
}

/// The output maps `maps` of `out` (`plane` values each), with their biases, for
/// [`correlate`].
fn valid_positions<'a, const M: usize>(
    out: &'a mut [f32],
    plane: usize,
    maps: [usize; M],
    bias: &[f32],
    (width, ow): (usize, usize),
) -> ValidPositions<'a, M> {
    ValidPositions {
        maps: rows_of(out, plane, maps),
        bias: maps.map(|m| bias[m]),
        width,
        ow,
    }
}

/// The rows `rows` of `values` `[_, n]`, each `n` long; `rows` distinct.
fn rows_of<const M: usize>(values: &mut [f32], n: usize, rows: [usize; M]) -> [&mut [f32]; M] {
    let rows = rows.map(|r| r * n..(r + 1) * n);
    values
        .get_disjoint_mut(rows)
        .expect("distinct rows within the values")
}

multiversion! { wide
    /// The adjoint of [`correlate`]: adds to `grad_input` `[c_in, height, width]` the gradient
    /// that `grad` `[c_out, n]` (dL/d(sums)) sends back through `weight`, which is
    /// `col2im(weightᵀ · grad)`.
    ///
    /// Bit for bit what matrixmultiply and `col2im` gave (inner dimension `c_out <= 256`): each
    /// window entry's sum over the output maps is one fused multiply-add after another from
    /// +0, and the entries are added onto the input in `(i, l, m)` order. Entries go two at a
    /// time into a row of `scratch` each (kept by the caller from one sample to the next),
    /// sharing the loads of `grad`, in blocks of 48 positions;
    /// five at a time in the AVX-512 build, whose 32 registers hold their sums (a 5 x 5
    /// kernel's entries then in five passes, none left over).
    fn correlate_adjoint(grad: &[f32], shape: ConvShape, weight: &[f32], connected: Option<&[bool]>, scratch: &mut Vec<f32>, grad_input: &mut [f32]) {
        if WIDE {
            adjoint_entries::<FUSED, WIDE, 5>(grad, shape, weight, connected, scratch, grad_input);
        } else {
            adjoint_entries::<FUSED, WIDE, 2>(grad, shape, weight, connected, scratch, grad_input);
        }
    }
}

/// [`correlate_adjoint`] with window entries `E` at a time over blocks of 48 positions, then
/// the entries left over one at a time.
#[inline(always)]
fn adjoint_entries<const FUSED: bool, const WIDE: bool, const E: usize>(
    grad: &[f32],
    shape: ConvShape,
    weight: &[f32],
    connected: Option<&[bool]>,
    scratch: &mut Vec<f32>,
    grad_input: &mut [f32],
) {
    let ConvShape { c_in, c_out, k, .. } = shape;
    let (n, kk) = (shape.positions(), k * k);
    let sees = |p: usize, i: usize| connected.is_none_or(|c| c[p * c_in + i]);
    let (starts, plane) = (shape.entry_starts(), shape.plane());
    // where the run of window entry `lm` of input map `i` starts in the input
    let start_of = |i: usize, lm: usize| i * plane + starts[lm];
    scratch.resize(E * n, 0.0);
    let (mut many, mut one) = (Vec::with_capacity(c_out), Vec::with_capacity(c_out));
    let mut kernels = Vec::with_capacity(c_out);
    for i in 0..c_in {
        // each output map that sees input map i, with its kernel there
        kernels.clear();
        let seen = (0..c_out).filter(|&p| sees(p, i));
        kernels.extend(seen.map(|p| (p * n, &weight[(p * c_in + i) * kk..][..kk])));
        let mut lm = 0;
        while lm + E <= kk {
            many.clear();
            many.extend(kernels.iter().map(|&(at, kernel)| {
                let entries: [f32; E] = kernel[lm..lm + E].try_into().expect("E entries");
                (at, entries)
            }));
            let mut rows = rows_of(scratch, n, std::array::from_fn(|e| e));
            sum_of_runs::<FUSED, E, { block(false) }>(grad, &many, n, &mut rows);
            if (1..E).all(|e| starts[lm + e] == starts[lm] + e) {
                // one pass over the input for the entries' runs, which start one apart
                let start = start_of(i, lm);
                let rows = std::array::from_fn(|e| &scratch[e * n..][..n]);
                add_runs_one_apart::<E>(rows, &mut grad_input[start..start + n + E - 1]);
            } else {
                for (e, row) in scratch.chunks_exact(n).enumerate() {
                    let start = start_of(i, lm + e);
                    add_runs_one_apart([row], &mut grad_input[start..start + n]);
                }
            }
            lm += E;
        }
        for lm in lm..kk {
            one.clear();
            one.extend(kernels.iter().map(|&(at, kernel)| (at, [kernel[lm]])));
            sum_of_runs_in::<FUSED, WIDE, 1>(grad, &one, n, &mut [&mut scratch[..n]]);
            let start = start_of(i, lm);
            add_runs_one_apart([&scratch[..n]], &mut grad_input[start..start + n]);
        }
    }
}

/// `out[t + e] += rows[e][t]` for each of the `E` rows (all `n` long, `out` `n + E - 1`; one
/// row is added as it is), each value of `out` taking its terms in row order, as adding the
/// rows one after another would; but in one pass over `out`, which does not load what the row before has just stored
/// one value off (a load the processor cannot forward from that store).
#[inline(always)]
fn add_runs_one_apart<const E: usize>(rows: [&[f32]; E], out: &mut [f32]) {
    let n = rows[0].len();
    let add_at = |out: &mut [f32], t: usize| {
        for (e, row) in rows.iter().enumerate() {
            if let Some(&v) = t.checked_sub(e).and_then(|q| row.get(q)) {
                out[t] += v;
            }
        }
    };
    if n < E {
        (0..n + E - 1).for_each(|t| add_at(out, t));
        return;
    }
    // where every row has a term
    let rows_within = std::array::from_fn::<_, E, _>(|e| &rows[e][E - 1 - e..n - e]);
    for (j, o) in out[E - 1..n].iter_mut().enumerate() {
        each_of!(E, |e| { *o += rows_within[e][j] });
    }
    (0..E - 1).chain(n..n + E - 1).for_each(|t| add_at(out, t));
}

/// Positions per block of matrixmultiply's f32 kernels (`kc`): a product's sums are added to
/// the output one block at a time.
const GEMM_DEPTH: usize = 256;

/// Output maps per pass of [`correlate_weight_grad`]: each position's gradient loaded once for
/// [`GRAD_TAPS`] window entries.
const GRAD_MAPS: usize = 2;

/// Window entries per pass of [`correlate_weight_grad`]: with [`GRAD_MAPS`] maps, ten chains
/// of fused multiply-adds in flight, which with the loads fit AVX2's sixteen registers.
const GRAD_TAPS: usize = 5;

multiversion! {
    /// The weight gradient of a convolution: `grad_weight[p, r] += Σ_q grad[p, q] · x_r[q]`
    /// for `grad` `[c_out, n]` (dL/d(sums) at the full-width positions) and `grad_weight`
    /// `[c_out, c_in·k·k]`, where `x_r[q]` is window entry `r` at position `q` of the flat
    /// `input` (`input[offset_r + q]`), squared when `square`. Only the kernels `connected`
    /// (`[c_out, c_in]`, all when `None`) are touched.
    ///
    /// Each sum runs along the positions, eight to a register: [`GRAD_MAPS`] maps by
    /// [`GRAD_TAPS`] entries of one input map at a time, neither the gradient nor the input
    /// copied ([`weight_grad_block`]).
    fn correlate_weight_grad(input: &[f32], shape: ConvShape, grad: &[f32], connected: Option<&[bool]>, square: bool, grad_weight: &mut [f32]) {
        let ConvShape { c_in, c_out, k, .. } = shape;
        let (n, kk) = (shape.positions(), k * k);
        let taps = c_in * kk;
        let starts = shape.entry_starts();
        let mut maps = Vec::with_capacity(c_out);
        for i in 0..c_in {
            let plane = &input[i * shape.plane()..];
            maps.clear();
            maps.extend((0..c_out).filter(|&p| connected.is_none_or(|c| c[p * c_in + i])));
            for group in maps.chunks(GRAD_MAPS) {
                // a short group repeats its last map, a short pass its last entry; their sums
                // are then not used
                let rows: [&[f32]; GRAD_MAPS] =
                    std::array::from_fn(|m| &grad[group[m.min(group.len() - 1)] * n..][..n]);
                for first in (0..kk).step_by(GRAD_TAPS) {
                    let xs: [&[f32]; GRAD_TAPS] = std::array::from_fn(|t| {
                        &plane[starts[(first + t).min(kk - 1)]..][..n]
                    });
                    let sums = if square {
                        weight_grad_block::<FUSED, true>(rows, xs)
                    } else {
                        weight_grad_block::<FUSED, false>(rows, xs)
                    };
                    for (&p, sums) in group.iter().zip(sums) {
                        let row = &mut grad_weight[p * taps + i * kk + first..];
                        for (w, s) in row.iter_mut().zip(sums).take(kk - first) {
                            *w += s;
                        }
                    }
                }
            }
        }
    }
}

/// `values[q..q + 8]`.
#[inline(always)]
fn eight(values: &[f32], q: usize) -> [f32; 8] {
    values[q..q + 8].try_into().expect("eight values")
}

/// One pass of [`correlate_weight_grad`]: `Σ_q row[q] · x[q]` for each of the
/// [`GRAD_MAPS`] gradient `rows` with each of the [`GRAD_TAPS`] runs `xs` (squared when
/// `SQUARE`), all of one length. Positions go eight at a time into eight partial sums, one
/// fused multiply-add after another from +0, which are then added in a fixed tree; the
/// positions past the last whole eight follow one after another.
#[inline(always)]
fn weight_grad_block<const FUSED: bool, const SQUARE: bool>(
    rows: [&[f32]; GRAD_MAPS],
    xs: [&[f32]; GRAD_TAPS],
) -> [[f32; GRAD_TAPS]; GRAD_MAPS] {
    let n = rows[0].len();
    let squared = |x: f32| if SQUARE { x * x } else { x };
    // every run cut to the same length, so that one check covers them all in the loop
    let (rows, xs) = (rows.map(|r| &r[..n]), xs.map(|x| &x[..n]));
    // acc[t][m]: entry t with map m, eight positions apart
    let mut acc = [[[0.0f32; 8]; GRAD_MAPS]; GRAD_TAPS];
    let mut q = 0;
    while q + 8 <= n {
        let g: [[f32; 8]; GRAD_MAPS] = rows.map(|r| eight(r, q));
        each_of!(GRAD_TAPS, |t| {
            let x = eight(xs[t], q).map(squared);
            for (acc, g) in acc[t].iter_mut().zip(&g) {
                for l in 0..8 {
                    acc[l] = madd::<FUSED>(g[l], x[l], acc[l]);
                }
            }
        });
        q += 8;
    }
    let mut sums = [[0.0f32; GRAD_TAPS]; GRAD_MAPS];
    for (t, acc) in acc.into_iter().enumerate() {
        for (m, a) in acc.into_iter().enumerate() {
            let mut sum = ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
            for p in q..n {
                sum = madd::<FUSED>(rows[m][p], squared(xs[t][p]), sum);
            }
            sums[m][t] = sum;
        }
    }
    sums
}

multiversion! {
    /// `c[p, r] += a[p] · b[r]` for `c` `[P, R]` in standard layout: a matrix product with
    /// inner dimension 1, rounded as matrixmultiply's kernel rounds it (the product made +0
    /// when it is -0, then added), without the packing.
    fn add_outer(c: ArrayViewMut2<f32>, a: ArrayView1<f32>, b: ArrayView1<f32>) {
        let mut c = c;
        let b = b.as_standard_layout();
        let b = b.as_slice().expect("standard layout");
        for (mut row, &a) in c.rows_mut().into_iter().zip(&a) {
            let row = row.as_slice_mut().expect("rows are contiguous");
            for (c, &b) in row.iter_mut().zip(b) {
                *c += a * b + 0.0;
            }
        }
    }
}

/// Writes `next(i, value[i], grad[i])` in place of each value, and the old value in place of
/// its gradient; returns whether every new value is finite. Every value is computed, finite
/// or not, so that the optimisers' `settle` can finish the step either way (or take it
/// back).
#[inline(always)]
pub(crate) fn step_values(
    value: &mut [f32],
    grad: &mut [f32],
    next: impl Fn(usize, f32, f32) -> f32,
) -> bool {
    let mut finite = true;
    for (i, (v, g)) in value.iter_mut().zip(grad.iter_mut()).enumerate() {
        let new = next(i, *v, *g);
        finite &= new.is_finite();
        *g = std::mem::replace(v, new);
    }
    finite
}

/// One sample's step of plain gradient descent on a dense layer, for [`dense_step_check`]
/// and [`dense_step_apply`]: `g` `[P]` (dL/d(sums)), the input `x` `[R]`, the rate `lr`, and
/// whether the layer's gradient buffers may hold a gradient to step too (`held`); when not,
/// they are known to hold zeros and are not read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DenseStep<'a> {
    pub g: &'a [f32],
    pub x: &'a [f32],
    pub lr: f32,
    pub held: bool,
}

/// A value after one step: `value − lr · (held + sample)`, with `sample` this sample's
/// gradient. Rounded as [`GradientDescent`](crate::train::GradientDescent) rounds its step once
/// the backward pass has added `sample` to the buffer.
#[inline(always)]
fn stepped(value: f32, held: f32, sample: f32, lr: f32) -> f32 {
    value - lr * (held + sample)
}

/// This sample's gradient of weight `[p, r]`, `g[p] · x[r]`, rounded as [`add_outer`] adds it.
#[inline(always)]
fn weight_sample(gp: f32, x: f32) -> f32 {
    gp * x + 0.0
}

/// This sample's gradient of bias `[p]`, `g[p]`, rounded as the bias's sum over a batch of one.
#[inline(always)]
fn bias_sample(gp: f32) -> f32 {
    0.0 + gp
}

multiversion! { wide
    /// The first half of one sample's backward pass through a dense layer with a step of plain
    /// gradient descent fused in, which reads and changes nothing but `grad_input`:
    /// `grad_input[r] = Σ_p g[p] · weight[p, r]` (nothing when `grad_input` is empty), and
    /// whether every value [`dense_step_apply`] would make is finite. `weight` `[P, R]` and
    /// `bias` `[P]` are each beside its gradient buffer.
    ///
    /// `grad_input` is rounded as [`gemv`] of the transposed weights rounds it.
    fn dense_step_check(weight: (&[f32], &[f32]), bias: (&[f32], &[f32]), step: DenseStep<'_>, grad_input: &mut [f32]) -> bool {
        if step.held {
            check_rows::<true>(weight, bias, step, grad_input)
        } else {
            check_rows::<false>(weight, bias, step, grad_input)
        }
    }
}

/// [`dense_step_check`], the buffers read when `HELD`.
///
/// Stepping every value to look at it took about a third of the pass, so the steps are bounded
/// first. Rounding is monotone, so every `|g[p] · x[r]|` and `|g[p]|` is at most
/// `max|g| · max(max|x|, 1)` rounded, and every step `lr · (held + sample)` at most `|lr| ·
/// (max|held| + that)` rounded; with every value at most `f32::MAX / 2` in magnitude and every
/// step at most `f32::MAX / 4`, no stepped value can overflow. The largest magnitudes are
/// taken as the bits of the absolute values, whose order as integers is the values' with NaN
/// above infinity, so that a NaN fails the bound. Only when it fails is each value stepped and
/// looked at ([`steps_finite`]): the answer is the same either way.
#[inline(always)]
fn check_rows<const HELD: bool>(
    (weight, weight_held): (&[f32], &[f32]),
    (bias, bias_held): (&[f32], &[f32]),
    step: DenseStep<'_>,
    grad_input: &mut [f32],
) -> bool {
    let DenseStep { g, x, lr, .. } = step;
    let r = x.len();
    grad_input.fill(0.0);
    let largest = |values: &[f32]| values.iter().fold(0, |m, &v| m.max(abs_bits(v)));
    let mut weight_bits = 0;
    for (w, &gp) in weight.chunks_exact(r).zip(g) {
        let w = &w[..r];
        if grad_input.is_empty() {
            weight_bits = weight_bits.max(largest(w));
        } else {
            for (gi, &w) in grad_input.iter_mut().zip(w) {
                *gi += gp * w;
                weight_bits = weight_bits.max(abs_bits(w));
            }
        }
    }
    let weight_max = f32::from_bits(weight_bits.max(largest(bias)));
    let held_max = if HELD {
        f32::from_bits(largest(weight_held).max(largest(bias_held)))
    } else {
        0.0
    };
    let sample_max = f32::from_bits(largest(g)) * f32::from_bits(largest(x).max(1f32.to_bits()));
    let step_max = lr.abs() * (held_max + sample_max);
    if weight_max <= f32::MAX / 2.0 && step_max <= f32::MAX / 4.0 {
        return true;
    }
    steps_finite::<HELD>((weight, weight_held), (bias, bias_held), step)
}

/// The bits of `|v|`: as integers, in the order of the magnitudes, with NaN above infinity.
#[inline(always)]
fn abs_bits(v: f32) -> u32 {
    v.to_bits() & 0x7fff_ffff
}

/// Whether every value [`dense_step_apply`] would make is finite, each made and looked at.
#[inline(always)]
fn steps_finite<const HELD: bool>(
    (weight, weight_held): (&[f32], &[f32]),
    (bias, bias_held): (&[f32], &[f32]),
    DenseStep { g, x, lr, .. }: DenseStep<'_>,
) -> bool {
    // without held gradients, the values stand in for their buffers, read as zeros
    let (weight_held, bias_held) = if HELD {
        (weight_held, bias_held)
    } else {
        (weight, bias)
    };
    let held_of = |h: f32| if HELD { h } else { 0.0 };
    let rows = weight
        .chunks_exact(x.len())
        .zip(weight_held.chunks_exact(x.len()));
    let weights = rows.zip(g).all(|((w, h), &gp)| {
        let row = w.iter().zip(h).zip(x);
        row.fold(true, |finite, ((&w, &h), &x)| {
            finite & stepped(w, held_of(h), weight_sample(gp, x), lr).is_finite()
        })
    });
    let biases = bias.iter().zip(bias_held).zip(g);
    weights
        && biases.fold(true, |finite, ((&b, &h), &gp)| {
            finite & stepped(b, held_of(h), bias_sample(gp), lr).is_finite()
        })
}

multiversion! { wide
    /// The second half of [`dense_step_check`]'s step: each value moved by `−lr ·` its
    /// gradient (what its buffer holds, when `step.held`, plus this sample's `g[p] · x[r]` or
    /// `g[p]`), and the buffers left holding zeros (written only when `step.held`).
    ///
    /// Each value is rounded as [`add_outer`], the bias's sum and
    /// [`GradientDescent`](crate::train::GradientDescent)'s step round it one after another, so
    /// the bits are those of the backward pass then the step.
    fn dense_step_apply(weight: (&mut [f32], &mut [f32]), bias: (&mut [f32], &mut [f32]), step: DenseStep<'_>) {
        let DenseStep { g, x, lr, held } = step;
        let rows = weight.0.chunks_exact_mut(x.len()).zip(weight.1.chunks_exact_mut(x.len()));
        for ((w, h), &gp) in rows.zip(g) {
            if held {
                for ((w, h), &x) in w.iter_mut().zip(h).zip(x) {
                    *w = stepped(*w, std::mem::take(h), weight_sample(gp, x), lr);
                }
            } else {
                for (w, &x) in w.iter_mut().zip(x) {
                    *w = stepped(*w, 0.0, weight_sample(gp, x), lr);
                }
            }
        }
        for ((b, h), &gp) in bias.0.iter_mut().zip(bias.1.iter_mut()).zip(g) {
            let held_gradient = if held { std::mem::take(h) } else { 0.0 };
            *b = stepped(*b, held_gradient, bias_sample(gp), lr);
        }
    }
}

/// Rows of `a` that [`matmul`] multiplies with [`few_rows_product`] rather than
/// matrixmultiply, which spends most of the time of so small a product packing `b`.
const FEW_ROWS: usize = 32;

/// Rows of `a` per pass of [`few_rows_product`], in the lanes of two AVX registers.
const ROWS: usize = 16;

/// Columns of `c` per pass of [`few_rows_product`] in the AVX2 build: twelve registers of
/// sums, each broadcast of an entry of `b` feeding two of them.
const COLUMNS: usize = 6;

/// Columns per pass in the AVX-512 build, whose registers hold all [`ROWS`] rows: twelve
/// registers of sums again, so that as many multiply-adds are in flight.
const COLUMNS_WIDE: usize = 12;

multiversion! { wide
    /// `c = beta · c + a · bᵀ` for `beta` 0 or 1, `a` `[m, depth]`, `b` `[n, depth]` and `c`
    /// `[m, n]`, all in standard layout: a few samples through a dense layer.
    ///
    /// Bit for bit what matrixmultiply gives: each sum one fused multiply-add after another
    /// from +0, [`GEMM_DEPTH`] terms at a time, each block's sum added to `c` (the first
    /// block's put there when `beta` is 0). Rows of `a` go [`ROWS`] at a time, each block of
    /// them transposed into the lanes of registers; columns of `c` [`COLUMNS`] at a time
    /// ([`COLUMNS_WIDE`] in the AVX-512 build).
    fn few_rows_product(a: &[f32], b: &[f32], depth: usize, beta: f32, c: &mut [f32]) {
        if WIDE {
            product_in_blocks::<FUSED, COLUMNS_WIDE>(a, b, depth, beta, c);
        } else {
            product_in_blocks::<FUSED, COLUMNS>(a, b, depth, beta, c);
        }
    }
}

/// A cache line's alignment, so that no load of a 512-bit register from `T` straddles two
/// lines.
#[repr(C, align(64))]
struct Aligned<T>(T);

/// [`few_rows_product`] with columns of `c` `J` at a time.
#[inline(always)]
fn product_in_blocks<const FUSED: bool, const J: usize>(
    a: &[f32],
    b: &[f32],
    depth: usize,
    beta: f32,
    c: &mut [f32],
) {
    let (m, n) = (a.len() / depth, b.len() / depth);
    // one block of rows, transposed: a fixed size, however deep the product
    let mut lanes = Aligned([0.0f32; GEMM_DEPTH * ROWS]);
    let lanes = &mut lanes.0;
    // a short last block of columns: copied beside each other, the last repeated (its sums
    // then not used)
    let mut tail = Vec::new();
    for first in (0..m).step_by(ROWS) {
        let rows = ROWS.min(m - first);
        for start in (0..depth).step_by(GEMM_DEPTH) {
            let x = &mut lanes[..GEMM_DEPTH.min(depth - start) * ROWS];
            for (t, lane) in x.chunks_exact_mut(ROWS).enumerate() {
                for (r, v) in lane.iter_mut().enumerate() {
                    *v = if r < rows {
                        a[(first + r) * depth + start + t]
                    } else {
                        0.0
                    };
                }
            }
            let x = &*x;
            let terms = x.len() / ROWS;
            for j in (0..n).step_by(J) {
                let (block, stride) = if j + J <= n {
                    (&b[j * depth + start..], depth)
                } else {
                    tail.clear();
                    for jj in 0..J {
                        let column = (j + jj).min(n - 1);
                        tail.extend_from_slice(&b[column * depth + start..][..terms]);
                    }
                    (&tail[..], terms)
                };
                let sums = columns_block::<FUSED, J>(x, block, stride);
                for (jj, sums) in sums.iter().enumerate().take(n - j) {
                    for (r, &sum) in sums.iter().enumerate().take(rows) {
                        let c = &mut c[(first + r) * n + j + jj];
                        *c = if start == 0 && beta == 0.0 {
                            sum
                        } else {
                            *c + sum
                        };
                    }
                }
            }
        }
    }
}

/// One block of [`few_rows_product`]: for `J` rows of `b` at `stride` from one another (the
/// first at the block's first term), the sums over the block's terms of each with the
/// transposed rows `x` `[terms, ROWS]`. One slice and a stride rather than `J` slices, so that
/// the loop addresses every row from one pointer.
#[inline(always)]
fn columns_block<const FUSED: bool, const J: usize>(
    x: &[f32],
    b: &[f32],
    stride: usize,
) -> [[f32; ROWS]; J] {
    let terms = x.len() / ROWS;
    let rows: [&[f32]; J] = std::array::from_fn(|jj| &b[jj * stride..][..terms]);
    let mut acc = [[0.0f32; ROWS]; J];
    for (t, x) in x.chunks_exact(ROWS).enumerate() {
        each_of!(J, |jj| {
            let w = rows[jj][t];
            for (a, &x) in acc[jj].iter_mut().zip(x) {
                *a = madd::<FUSED>(w, x, *a);
            }
        });
    }
    acc
}

/// `c = beta · c + a · b` for `a` `[m, k]`, `b` `[k, n]`, `c` `[m, n]`.
///
/// A product with one row or one column (a single sample through a dense layer) runs as
/// [`gemv`], which reads the weights once where a blocked product would copy them into its
/// packing buffers first; one added with inner dimension 1 (a single sample's weight
/// gradient) as [`add_outer`]; one with at most [`FEW_ROWS`] rows (a small batch through a
/// dense layer) as [`few_rows_product`]; anything else goes to `matrixmultiply`. All of them
/// round as matrixmultiply does, except [`gemv`].
pub(crate) fn matmul(a: ArrayView2<f32>, b: ArrayView2<f32>, beta: f32, mut c: ArrayViewMut2<f32>) {
    let contiguous = |m: &ArrayView2<f32>| m.is_standard_layout() || m.t().is_standard_layout();
    if c.ncols() == 1 && contiguous(&a) {
        gemv(a, b.column(0), beta, c.column_mut(0));
    } else if c.nrows() == 1 && contiguous(&b) {
        gemv(b.t(), a.row(0), beta, c.row_mut(0));
    } else if a.ncols() == 1 && beta == 1.0 && c.is_standard_layout() {
        add_outer(c, a.column(0), b.row(0));
    } else if let (true, Some(a_rows), Some(b_cols), Some(out)) = (
        a.nrows() <= FEW_ROWS && a.ncols() > 0 && (beta == 0.0 || beta == 1.0),
        a.as_slice(),
        b.t().to_slice(),
        c.as_slice_mut(),
    ) {
        few_rows_product(a_rows, b_cols, a.ncols(), beta, out);
    } else {
        general_mat_mul(1.0, &a, &b, beta, &mut c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::uniform;
    use approx::assert_abs_diff_eq;
    use ndarray::{Array1, Array2, Array3};

    #[test]
    fn exp_is_within_2_ulp_fused_or_not() {
        for i in -8730..=8800 {
            let x = i as f32 / 100.0;
            let exact = (x as f64).exp();
            for (fused, e) in [(true, exp::<true>(x)), (false, exp::<false>(x))] {
                let err = ((e as f64 - exact) / exact).abs();
                assert!(
                    err < 2.0 * f32::EPSILON as f64,
                    "exp({x}), fused {fused}: relative error {err}"
                );
            }
        }
        assert!(exp::<true>(-1000.0) > 0.0 && exp::<true>(1000.0).is_finite());
    }

    /// One odd value for [`dense_step_check`]'s test: which of weight, weight buffer, bias,
    /// bias buffer, `g` and `x` gets it, where (all of it when `None`), and the value.
    type Edit = (usize, Option<usize>, f32);

    #[test]
    fn dense_step_check_says_whether_every_stepped_value_is_finite() {
        let (rows, cols) = (3, 20);
        let big = f32::MAX;
        // one odd value anywhere: around the bounds the check tries first (weights up to
        // MAX / 2, steps up to MAX / 4), where stepping overflows and where it does not, and
        // what is not finite
        let odd = [
            0.0,
            2.0,
            big / 2.0,
            big * 0.6,
            big,
            -big,
            1e19,
            -1e36,
            f32::INFINITY,
            f32::NAN,
        ];
        let mut cases: Vec<(f32, Vec<Edit>)> = Vec::new();
        for place in 0..6 {
            let at = if place % 2 == 0 { usize::MAX } else { 0 };
            for (&v, &lr) in odd.iter().zip([0.1, 1e19, 3.0].iter().cycle()) {
                cases.push((lr, vec![(place, Some(at), v)]));
            }
        }
        // past a bound, each side of overflow: a weight near MAX stepped a little further, one
        // at MAX / 2 stepped by more than MAX / 2, a bias stepped by |g| while every |x| is small
        for (weight, over, under) in [(0.9, -0.2, -0.05), (0.5, -0.6, -0.4)] {
            for g in [over, under] {
                let edits = vec![
                    (0, Some(0), weight * big),
                    (4, Some(0), g * big),
                    (5, None, 1.0),
                ];
                cases.push((1.0, edits));
            }
        }
        for g in [-0.6, -0.5] {
            cases.push((
                1.0,
                vec![
                    (2, Some(0), 0.45 * big),
                    (4, Some(0), g * big),
                    (5, None, 1e-3),
                ],
            ));
        }
        let mut outcomes = [0; 2];
        for held in [false, true] {
            for (lr, edits) in &cases {
                let lengths = [rows * cols, rows * cols, rows, rows, rows, cols];
                let mut values: Vec<Vec<f32>> = lengths
                    .iter()
                    .enumerate()
                    .map(|(i, &len)| uniform(len, i as u64).to_vec())
                    .collect();
                for &(place, at, v) in edits {
                    match at {
                        Some(at) => values[place][at.min(lengths[place] - 1)] = v,
                        None => values[place].fill(v),
                    }
                }
                if !held {
                    // not read: anything there
                    values[1].fill(f32::NAN);
                    values[3].fill(f32::NAN);
                }
                let [w, wh, b, bh, g, x] = &values[..] else {
                    unreachable!()
                };
                let (lr, step) = (
                    *lr,
                    DenseStep {
                        g,
                        x,
                        lr: *lr,
                        held,
                    },
                );
                let held_of = |h: f32| if held { h } else { 0.0 };
                let weights =
                    w.chunks(cols)
                        .zip(wh.chunks(cols))
                        .zip(g)
                        .flat_map(|((w, h), &gp)| {
                            let each = w.iter().zip(h).zip(x);
                            each.map(move |((&w, &h), &x)| {
                                stepped(w, held_of(h), weight_sample(gp, x), lr)
                            })
                        });
                let biases = b
                    .iter()
                    .zip(bh)
                    .zip(g)
                    .map(|((&b, &h), &gp)| stepped(b, held_of(h), bias_sample(gp), lr));
                let expected = weights.chain(biases).all(f32::is_finite);
                outcomes[usize::from(expected)] += 1;
                let mut grad_input = vec![f32::NAN; cols];
                let finite = dense_step_check((w, wh), (b, bh), step, &mut grad_input);
                assert_eq!(finite, expected, "held {held}, {edits:?}, lr {lr}");
                for (c, &got) in grad_input.iter().enumerate() {
                    let sum = (0..rows).fold(0.0, |s, p| s + g[p] * w[p * cols + c]);
                    assert_eq!(got.to_bits(), sum.to_bits());
                }
                assert_eq!(dense_step_check((w, wh), (b, bh), step, &mut []), expected);
            }
        }
        assert!(outcomes.iter().all(|&n| n >= 20), "{outcomes:?}");
    }

    #[test]
    fn reciprocal_is_within_1_ulp_fused_or_not() {
        for i in 0..=1 << 16 {
            let d = 1.0 + i as f32 / (1 << 16) as f32;
            let exact = 1.0 / d as f64;
            for (fused, r) in [
                (true, reciprocal_1_to_2::<true>(d)),
                (false, reciprocal_1_to_2::<false>(d)),
            ] {
                let err = ((r as f64 - exact) / exact).abs();
                assert!(
                    err <= f32::EPSILON as f64,
                    "1 / {d}, fused {fused}: relative error {err}"
                );
            }
        }
    }

    #[test]
    fn sigmoid_and_tanh_are_close_to_f64_and_keep_nan() {
        let values: Vec<f32> = (-2000..=2000).map(|i| i as f32 * 0.05).collect();
        let mut sigmoid = values.clone();
        sigmoid_in_place(&mut sigmoid);
        let mut tanh = values.clone();
        scaled_tanh_in_place(&mut tanh, 1.7, 0.6);
        for ((&v, s), t) in values.iter().zip(sigmoid).zip(tanh) {
            let exact = 1.0 / (1.0 + (-v as f64).exp());
            let err = ((s as f64 - exact) / exact).abs();
            // below e^-87.3, e^v is held at e^-87.3
            if v > -87.0 {
                assert!(
                    err < 2.0 * f32::EPSILON as f64,
                    "sigmoid({v}): relative error {err}"
                );
            }
            assert!(s > 0.0 && s.is_normal() && s <= 1.0, "sigmoid({v}) = {s}");
            let exact = 1.7 * (0.6 * v as f64).tanh();
            assert!(
                (t as f64 - exact).abs() < 3e-7 * 1.7,
                "tanh({v}): {t} vs {exact}"
            );
        }
        let mut special = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY];
        sigmoid_in_place(&mut special);
        assert!(special[0].is_nan());
        assert_eq!(special[1], 1.0);
        assert!(special[2] > 0.0 && special[2] < 1e-37);
        let mut special = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY];
        scaled_tanh_in_place(&mut special, 1.7, 0.6);
        assert!(special[0].is_nan());
        assert_eq!(&special[1..], &[1.7, -1.7]);
    }

    #[test]
    fn row_kernels_cover_every_position_of_short_and_long_rows() {
        // output widths below one chunk, of one, and not a multiple of one: 5, 8, 14, 17
        for (oh, ow, width) in [(3, 5, 10), (2, 8, 16), (4, 14, 28), (2, 17, 35)] {
            let input = uniform((2 * oh, width), 1);
            let x = input.as_slice().unwrap();
            let (mut out, mut weighted) = (vec![f32::NAN; oh * ow], vec![f32::NAN; oh * ow]);
            sums_of_2x2(x, width, &mut out, ow);
            let (coef, bias) = (0.7, -0.3);
            weighted_sums_of_2x2(x, width, &mut weighted, ow, coef, bias);
            for (i, (&o, &w)) in out.iter().zip(&weighted).enumerate() {
                let (t, b) = (
                    2 * (i / ow) * width + 2 * (i % ow),
                    (2 * (i / ow) + 1) * width + 2 * (i % ow),
                );
                let expected = (0.0 + (x[t] + x[t + 1])) + (x[b] + x[b + 1]);
                assert_eq!(o.to_bits(), expected.to_bits(), "{ow} wide, block {i}");
                let expected = bias + coef * expected;
                assert_eq!(
                    w.to_bits(),
                    expected.to_bits(),
                    "{ow} wide, block {i} weighted"
                );
            }
        }
    }

    #[test]
    fn blocks_through_exp_equal_one_value_at_a_time() {
        // whole blocks of the widest build, then what is left: two sixteens and five
        let values: Vec<f32> = (0..3 * 64 + 37).map(|i| i as f32 * 1.01 - 115.0).collect();
        let mut sigmoid = values.clone();
        sigmoid_in_place(&mut sigmoid);
        let mut tanh = values.clone();
        scaled_tanh_in_place(&mut tanh, 1.7, 0.6);
        // `(e^-|z|, 1 / (1 + e^-|z|))` for one value, as the build that ran rounds them
        fn one<const FUSED: bool>(z: f32) -> (f32, f32) {
            let t = exp::<FUSED>(-z.abs());
            (t, reciprocal_1_to_2::<FUSED>(1.0 + t))
        }
        let one = |z: f32| {
            if fused() {
                one::<true>(z)
            } else {
                one::<false>(z)
            }
        };
        for ((&v, s), th) in values.iter().zip(sigmoid).zip(tanh) {
            let (t, q) = one(v);
            let expected = if v >= 0.0 { q } else { t * q };
            assert_eq!(s.to_bits(), expected.to_bits(), "sigmoid({v})");
            let z = 2.0 * 0.6 * v;
            let (t, q) = one(z);
            let y = 1.7 * ((1.0 - t) * q);
            let expected = if z >= 0.0 { y } else { -y };
            assert_eq!(th.to_bits(), expected.to_bits(), "tanh({v})");
        }
    }

    /// `a == b` bit for bit where matrixmultiply fuses its multiply-adds as [`correlate`]
    /// does (an x86-64 processor with FMA), within rounding elsewhere.
    fn assert_same_sums(a: &[f32], b: &[f32]) {
        #[cfg(target_arch = "x86_64")]
        if fused() && std::arch::is_x86_feature_detected!("fma") {
            assert!(a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()));
            return;
        }
        assert_abs_diff_eq!(a, b, epsilon = 1e-5);
    }

    /// (C_in, H, W, C_out, K, connection table) of C1, C3 with and without Table I, and odd sizes.
    fn conv_shapes() -> Vec<(ConvShape, Option<Vec<bool>>)> {
        let shape = |c_in, height, width, c_out, k| ConvShape {
            c_in,
            c_out,
            height,
            width,
            k,
        };
        let table: Vec<bool> = crate::lenet5::C3_CONNECTIONS
            .iter()
            .flatten()
            .copied()
            .collect();
        vec![
            (shape(1, 32, 32, 6, 5), None),
            (shape(6, 14, 14, 16, 5), None),
            (shape(6, 14, 14, 16, 5), Some(table)),
            (shape(3, 7, 6, 5, 3), None),
            // map 0 pairs with map 2, whose inputs differ least from its own; map 1 is left over
            (
                shape(2, 4, 9, 3, 2),
                Some(vec![true, false, false, true, true, true]),
            ),
        ]
    }

    /// Seeded weights `[C_out, C_in·K·K]` of `shape`, as stored (any value in missing kernels)
    /// and as the products read them (missing kernels zero).
    fn weights(shape: ConvShape, table: Option<&[bool]>, seed: u64) -> (Array2<f32>, Array2<f32>) {
        let ConvShape { c_in, c_out, k, .. } = shape;
        let stored = uniform((c_out, c_in * k * k), seed);
        let mut masked = stored.clone();
        for ((p, r), w) in masked.indexed_iter_mut() {
            if table.is_some_and(|t| !t[p * c_in + r / (k * k)]) {
                *w = 0.0;
            }
        }
        (stored, masked)
    }

    /// A seeded input `[C_in, H, W]` of `shape` and its windows `[C_in·K·K, N]` (`im2col`).
    fn input_and_windows(shape: ConvShape, seed: u64) -> (Array3<f32>, Array2<f32>) {
        let ConvShape {
            c_in,
            height,
            width,
            k,
            ..
        } = shape;
        let input = uniform((c_in, height, width), seed);
        let mut cols = Array2::zeros((c_in * k * k, shape.positions()));
        window::im2col(input.view(), k, cols.view_mut());
        (input, cols)
    }

    #[test]
    fn correlate_gives_the_sums_of_im2col_and_a_product_plus_the_bias() {
        for (shape, table) in conv_shapes() {
            let n = shape.positions();
            let (input, cols) = input_and_windows(shape, 1);
            let (stored, masked) = weights(shape, table.as_deref(), 2);
            let mut expected = Array2::zeros((shape.c_out, n));
            matmul(masked.view(), cols.view(), 0.0, expected.view_mut());
            let taps = shape.taps(stored.as_slice().unwrap(), table.as_deref());
            let bias = uniform(shape.c_out, 3);
            let ConvShape { width, k, .. } = shape;
            let (oh, ow) = (shape.height + 1 - k, width + 1 - k);
            let expected = Array3::from_shape_fn((shape.c_out, oh, ow), |(c, j, x)| {
                expected[[c, j * width + x]] + bias[c]
            });
            let mut out = vec![f32::NAN; shape.c_out * oh * ow];
            let (x, bias) = (input.as_slice().unwrap(), bias.as_slice().unwrap());
            correlate(x, (width, ow), &taps, bias, &mut out);
            assert_same_sums(&out, expected.as_slice().unwrap());
        }
    }

    #[test]
    fn correlate_adjoint_gives_col2im_of_the_transposed_product() {
        for (shape, table) in conv_shapes() {
            let ConvShape {
                c_in,
                c_out,
                height,
                width,
                k,
            } = shape;
            let n = shape.positions();
            let grad = uniform((c_out, n), 3);
            let (_, masked) = weights(shape, table.as_deref(), 4);
            let start = uniform((c_in, height, width), 5);
            let mut cols = Array2::zeros((c_in * k * k, n));
            matmul(masked.t(), grad.view(), 0.0, cols.view_mut());
            let mut expected = start.clone();
            window::col2im_add(cols.view(), k, expected.view_mut());
            let mut got = start;
            let (g, w) = (grad.as_slice().unwrap(), masked.as_slice().unwrap());
            let out = got.as_slice_mut().unwrap();
            correlate_adjoint(g, shape, w, table.as_deref(), &mut Vec::new(), out);
            assert_same_sums(got.as_slice().unwrap(), expected.as_slice().unwrap());
        }
    }

    #[test]
    fn runs_one_apart_are_added_as_one_after_another() {
        fn check<const E: usize>(n: usize) {
            let rows = uniform((E, n), 1).mapv(|v| v * 1e3);
            let rows: [&[f32]; E] =
                std::array::from_fn(|e| &rows.as_slice().unwrap()[e * n..][..n]);
            let start = uniform(n + E - 1, 2);
            let mut expected = start.to_vec();
            for (e, row) in rows.iter().enumerate() {
                for (o, &v) in expected[e..].iter_mut().zip(*row) {
                    *o += v;
                }
            }
            let mut got = start.to_vec();
            add_runs_one_apart(rows, &mut got);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&expected), "{E} rows of {n}");
        }
        for n in [1, 2, 4, 5, 6, 17, 136] {
            check::<1>(n);
            check::<2>(n);
            check::<5>(n);
        }
    }

    #[test]
    fn correlate_weight_grad_adds_the_product_with_the_windows_to_connected_kernels() {
        for (shape, table) in conv_shapes() {
            let ConvShape { c_in, c_out, k, .. } = shape;
            let n = shape.positions();
            let (input, cols) = input_and_windows(shape, 6);
            let grad = uniform((c_out, n), 7);
            for square in [false, true] {
                let cols = if square {
                    cols.mapv(|x| x * x)
                } else {
                    cols.clone()
                };
                let start = uniform((c_out, cols.nrows()), 8);
                let mut expected = start.clone();
                general_mat_mul(1.0, &grad, &cols.t(), 1.0, &mut expected);
                // a missing kernel keeps its values, whatever they are
                for ((p, r), e) in expected.indexed_iter_mut() {
                    if table.as_ref().is_some_and(|t| !t[p * c_in + r / (k * k)]) {
                        *e = start[[p, r]];
                    }
                }
                let mut got = start;
                let (x, g) = (input.as_slice().unwrap(), grad.as_slice().unwrap());
                let out = got.as_slice_mut().unwrap();
                correlate_weight_grad(x, shape, g, table.as_deref(), square, out);
                assert_abs_diff_eq!(got, expected, epsilon = 1e-4);
            }
        }
    }

    #[test]
    fn weight_grad_blocks_sum_in_the_same_order_fused_or_not() {
        // the portable build rounds each multiply-add twice, and nothing else differs: with
        // products exact in f32, both give the same bits for every length of run
        let exact = |len: usize, seed: u64| -> Vec<f32> {
            uniform(len, seed)
                .iter()
                .map(|v| (v * 64.0).round())
                .collect()
        };
        for n in [1, 7, 8, 13, 136] {
            let rows: Vec<Vec<f32>> = (0..GRAD_MAPS).map(|m| exact(n, m as u64)).collect();
            let xs: Vec<Vec<f32>> = (0..GRAD_TAPS).map(|t| exact(n, 10 + t as u64)).collect();
            let rows: [&[f32]; GRAD_MAPS] = std::array::from_fn(|m| &rows[m][..]);
            let xs: [&[f32]; GRAD_TAPS] = std::array::from_fn(|t| &xs[t][..]);
            for square in [false, true] {
                let (fused, plain) = if square {
                    (
                        weight_grad_block::<true, true>(rows, xs),
                        weight_grad_block::<false, true>(rows, xs),
                    )
                } else {
                    (
                        weight_grad_block::<true, false>(rows, xs),
                        weight_grad_block::<false, false>(rows, xs),
                    )
                };
                assert_eq!(fused, plain, "n = {n}, square = {square}");
                let direct: f32 = rows[1]
                    .iter()
                    .zip(xs[4])
                    .map(|(g, &x)| g * if square { x * x } else { x })
                    .sum();
                assert_eq!(fused[1][4], direct, "n = {n}, square = {square}");
            }
        }
    }

    #[test]
    fn add_outer_adds_the_product_with_inner_dimension_one() {
        let (a, b) = (uniform(7, 1), uniform(9, 2));
        let start = uniform((7, 9), 3);
        let mut expected = start.clone();
        let (a2, b2) = (
            a.view().insert_axis(ndarray::Axis(1)),
            b.view().insert_axis(ndarray::Axis(0)),
        );
        general_mat_mul(1.0, &a2, &b2, 1.0, &mut expected);
        let mut got = start;
        add_outer(got.view_mut(), a.view(), b.view());
        assert_same_sums(got.as_slice().unwrap(), expected.as_slice().unwrap());
    }

    #[test]
    fn few_rows_product_gives_the_sums_of_matrixmultiply() {
        // (m, depth, n): C5 and F6 for a batch of 8, a part row group and odd sizes; depths
        // over one block of GEMM_DEPTH, and up to FEW_ROWS rows
        for (m, depth, n) in [
            (8, 400, 120),
            (8, 120, 84),
            (3, 84, 10),
            (13, 513, 25),
            (32, 7, 12),
        ] {
            let a = uniform((m, depth), 1);
            let weight = uniform((n, depth), 2);
            let start = uniform((m, n), 3);
            for beta in [0.0, 1.0] {
                let mut expected = start.clone();
                general_mat_mul(1.0, &a, &weight.t(), beta, &mut expected);
                let mut got = if beta == 0.0 {
                    Array2::from_elem((m, n), f32::NAN)
                } else {
                    start.clone()
                };
                matmul(a.view(), weight.t(), beta, got.view_mut());
                assert_same_sums(got.as_slice().unwrap(), expected.as_slice().unwrap());
            }
        }
    }

    #[test]
    fn gemv_sums_each_row_in_its_own_fixed_order() {
        // row counts around a group of DOT_ROWS, lengths with and without a partial chunk
        for (rows, cols) in [(1, 13), (7, 32), (8, 45), (9, 400), (17, 120), (120, 400)] {
            let m = uniform((rows, cols), 1);
            let v = uniform(cols, 2);
            let mut got = Array1::from_elem(rows, f32::NAN);
            gemv(m.view(), v.view(), 0.0, got.view_mut());
            let v = v.as_slice().unwrap();
            for (row, &got) in m.rows().into_iter().zip(&got) {
                // LANES interleaved partial sums, added in lane order, then the rest in order
                let row = row.as_slice().unwrap();
                let whole = cols - cols % LANES;
                let mut acc = [0.0f32; LANES];
                for (q, (x, y)) in row[..whole].iter().zip(&v[..whole]).enumerate() {
                    acc[q % LANES] += x * y;
                }
                let rest = row[whole..].iter().zip(&v[whole..]).map(|(x, y)| x * y);
                let expected = acc.iter().sum::<f32>() + rest.sum::<f32>();
                assert_eq!(got.to_bits(), expected.to_bits(), "{rows}x{cols}");
            }
        }
    }

    #[test]
    fn matmul_matches_ndarray_for_every_shape_and_layout() {
        // (m, k, n): vector shapes take gemv, inner dimension 1 add_outer, a few rows with b's
        // columns contiguous and beta 0 or 1 few_rows_product, the others matrixmultiply
        for (m, k, n) in [
            (120, 400, 1),
            (1, 120, 84),
            (6, 25, 784),
            (3, 13, 1),
            (1, 9, 5),
            (4, 1, 7),
        ] {
            let a = uniform((m, k), 1);
            let b = uniform((k, n), 2);
            let c0 = uniform((m, n), 3);
            let a_t = a.t().as_standard_layout().into_owned(); // [k, m], so a_t.t() is column-major
            let b_t = b.t().as_standard_layout().into_owned();
            for (a, b) in [
                (a.view(), b.view()),
                (a_t.t(), b.view()),
                (a.view(), b_t.t()),
                (a_t.t(), b_t.t()),
            ] {
                for beta in [0.0, 0.5, 1.0] {
                    let mut c = c0.clone();
                    matmul(a, b, beta, c.view_mut());
                    let expected = &c0 * beta + a.dot(&b);
                    assert_abs_diff_eq!(c, expected, epsilon = 1e-4);
                }
            }
        }
    }
}
