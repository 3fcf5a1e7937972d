//! The IDX reader, on raw and gzipped bytes: never a panic, and a success holds exactly the
//! values its header claims.
#![no_main]
use lenet5::data::idx::Idx;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for idx in [Idx::parse(data), Idx::from_reader(data)].into_iter().flatten() {
        assert_eq!(idx.data.len(), idx.dims.iter().product::<usize>());
    }
});
