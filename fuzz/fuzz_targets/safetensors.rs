//! safetensors import: never a panic, and a network that loads holds finite values only.
#![no_main]
use lenet5::{Layer, LeNet5};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(net) = LeNet5::from_safetensors(data, "fuzz") {
        assert!(net.params().iter().all(|p| p.value.iter().all(|v| v.is_finite())));
    }
});
