//! What the integration tests that run the examples share.

use std::path::{Path, PathBuf};

/// The example binary `name`, built beside the running test's own binary.
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>");
    profile_dir.join("examples").join(name)
}
