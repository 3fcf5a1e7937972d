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

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn fma_chains(seed: f32) -> f32 {
    use std::arch::x86_64::*;
    let (b, c) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
    let mut acc: [__m256; CHAINS] = std::array::from_fn(|i| _mm256_set1_ps(seed + i as f32));
    for _ in 0..ROUNDS {
        for a in &mut acc {
            *a = _mm256_fmadd_ps(*a, b, c);
        }
    }
    let mut sum = [0.0f32; 8];
    for a in acc {
        let mut lanes = [0.0f32; 8];
        // SAFETY: `lanes` holds 8 f32, as the unaligned store writes.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), a) };
        sum.iter_mut().zip(lanes).for_each(|(s, l)| *s += l);
    }
    sum.iter().sum()
}

/// [`fma_chains`] with 16-lane FMAs.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn fma_chains_x16(seed: f32) -> f32 {
    use std::arch::x86_64::*;
    let (b, c) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
    let mut acc: [__m512; CHAINS] = std::array::from_fn(|i| _mm512_set1_ps(seed + i as f32));
    for _ in 0..ROUNDS {
        for a in &mut acc {
            *a = _mm512_fmadd_ps(*a, b, c);
        }
    }
    acc.into_iter().map(|a| _mm512_reduce_add_ps(a)).sum()
}

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
