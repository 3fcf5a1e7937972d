//! The machine's peak f32 throughput on one core: ten independent chains of fused
//! multiply-adds, enough to hide the FMA latency, so the figure is the rate at which one core
//! retires FMAs. `fma_f32_one_core` runs 8-lane FMAs (AVX2 + FMA); `fma_f32x16_one_core`
//! 16-lane ones (AVX-512F), where the processor has them: a core with two 512-bit FMA units
//! retires twice the flops that way, one whose 512-bit operations take two passes through
//! 256-bit units the same. The other benchmarks' GFLOP/s are read against the higher.
//! Throughput is in flops (2 per lane per FMA).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

/// FMAs per chain in one measured call.
const ROUNDS: u64 = 100_000;
/// Independent chains.
const CHAINS: usize = 10;

/// `fn $name(seed) -> f32`: [`CHAINS`] chains of [`ROUNDS`] FMAs on `$vector`s (built with
/// `$features`), then the sum of every lane, so that nothing is optimised away.
macro_rules! fma_chains {
    ($name:ident, $features:literal, $vector:ident, $set1:ident, $fmadd:ident, $lanes:literal, $store:ident) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $features)]
        fn $name(seed: f32) -> f32 {
            use std::arch::x86_64::*;
            let (b, c) = ($set1(0.999_999), $set1(1e-7));
            let mut acc: [$vector; CHAINS] = std::array::from_fn(|i| $set1(seed + i as f32));
            for _ in 0..ROUNDS {
                for a in &mut acc {
                    *a = $fmadd(*a, b, c);
                }
            }
            let mut sum = 0.0;
            for a in acc {
                let mut lanes = [0.0f32; $lanes];
                // SAFETY: `lanes` holds as many f32 as the unaligned store writes.
                unsafe { $store(lanes.as_mut_ptr(), a) };
                sum += lanes.iter().sum::<f32>();
            }
            sum
        }
    };
}

fma_chains!(
    fma_chains,
    "avx2,fma",
    __m256,
    _mm256_set1_ps,
    _mm256_fmadd_ps,
    8,
    _mm256_storeu_ps
);
fma_chains!(
    fma_chains_x16,
    "avx512f",
    __m512,
    _mm512_set1_ps,
    _mm512_fmadd_ps,
    16,
    _mm512_storeu_ps
);

fn bench_peak(c: &mut Criterion) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        let mut group = c.benchmark_group("peak");
        group.throughput(Throughput::Elements(ROUNDS * CHAINS as u64 * 8 * 2));
        group.bench_function("fma_f32_one_core", |b| {
            // SAFETY: the processor has AVX2 and FMA, checked above.
            b.iter(|| unsafe { fma_chains(black_box(1.0)) })
        });
        if is_x86_feature_detected!("avx512f") {
            group.throughput(Throughput::Elements(ROUNDS * CHAINS as u64 * 16 * 2));
            group.bench_function("fma_f32x16_one_core", |b| {
                // SAFETY: the processor has AVX-512F, checked above.
                b.iter(|| unsafe { fma_chains_x16(black_box(1.0)) })
            });
        }
        group.finish();
        return;
    }
    let _ = c;
    eprintln!("peak: skipped, this processor has no AVX2 and FMA");
}

criterion_group!(benches, bench_peak);
criterion_main!(benches);
