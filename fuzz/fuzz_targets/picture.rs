//! Picture decoding and the MNIST-style preprocessing: never a panic, and a digit found is a
//! 28x28 image.
#![no_main]
use lenet5::digit::{decode_image, to_mnist};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(image) = decode_image(data, "fuzz")
        && let Ok(digit) = to_mnist(&image, "fuzz")
    {
        assert_eq!(digit.dim(), (28, 28));
    }
});
