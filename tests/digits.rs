//! The shipped models on pictures drawn for the purpose (`tests/digits/N.png` shows digit N):
//! different sizes, ink colours, paper shades, light-on-dark and dark-on-light, PNG and JPEG.

use lenet5::LeNet5;
use lenet5::digit::load_image;

#[test]
fn drawn_digits_are_recognised() {
    for net in [LeNet5::pretrained(), LeNet5::pretrained_modern()] {
        check_drawn_digits(&net);
    }
}

fn check_drawn_digits(net: &LeNet5) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/digits");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let expected: usize = path.file_stem().unwrap().to_str().unwrap().parse().unwrap();
        let image = load_image(&path).unwrap();
        let prediction = net
            .classify_image(&image, &path.display().to_string())
            .unwrap();
        assert_eq!(
            prediction.digit,
            expected,
            "{:?}, {}: {:?}",
            net.preset(),
            path.display(),
            prediction.probabilities
        );
        checked += 1;
    }
    assert_eq!(checked, 5);
}
