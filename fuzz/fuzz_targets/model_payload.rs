//! The model file decoder behind a valid header and checksum: the first byte picks the format
//! version, the rest is the payload, so every input reaches bincode and the checks after it,
//! and the rebuilding of a stack from the layers a file records.
#![no_main]
use lenet5::io::{MAGIC, load_bytes};
use lenet5::{Conv, Sequential};
use libfuzzer_sys::fuzz_target;
use rand::SeedableRng;

fuzz_target!(|data: &[u8]| {
    let Some((&version, payload)) = data.split_first() else {
        return;
    };
    let mut bytes = MAGIC.to_vec();
    bytes.extend(u32::from(version % 4).to_le_bytes());
    bytes.extend((payload.len() as u64).to_le_bytes());
    bytes.extend(crc32fast::hash(payload).to_le_bytes());
    bytes.extend(payload);
    let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(1);
    let mut net = Sequential::new([1, 4, 4])
        .add(Conv::new(1, 2, 3, &mut rng).unwrap())
        .unwrap();
    let _ = lenet5::io::architecture_of(&bytes, "fuzz");
    let _ = lenet5::io::stack_from_bytes(&bytes, "fuzz");
    if load_bytes(&mut net, "fuzz", &bytes, "fuzz").is_ok() {
        use lenet5::Layer;
        assert!(net.params().iter().all(|p| p.value.iter().all(|v| v.is_finite())));
    }
});
