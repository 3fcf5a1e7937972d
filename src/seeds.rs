//! Independent random streams from one seed.

use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;

/// SplitMix64's output function (Steele et al. 2014): a bijective mix of 64 bits, so that
/// nearby inputs give unrelated outputs.
pub(crate) fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The generator of stream `stream` at `index` (an epoch) from `seed`: each `(stream, index)`
/// pair gets its own, so that any one can be made again from the seed alone.
pub(crate) fn stream(seed: u64, stream: u64, index: u64) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(mix(seed ^ mix((stream << 48) ^ index)))
}
