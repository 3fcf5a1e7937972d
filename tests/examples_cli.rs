//! The examples refuse what they cannot do before they touch a file: unknown flags, outputs
//! that would overwrite a model or another file, outputs that cannot be written. `cargo test`
//! builds the examples; these tests run them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;
use common::example;

/// Runs example `name` with `args` in `dir`, without MNIST_DIR, so nothing can train.
fn run(name: &str, args: &[&str], dir: &Path) -> Output {
    Command::new(example(name))
        .args(args)
        .current_dir(dir)
        .env_remove("MNIST_DIR")
        .output()
        .expect("the example runs")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("lenet5-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_misspelt_flag_is_refused_and_the_model_is_left_alone() {
    let dir = temp_dir("flags");
    let model = dir.join("m.bin");
    lenet5::LeNet5::new().save(&model).unwrap();
    let before = std::fs::read(&model).unwrap();
    let out = run("export", &["--modle", "m.bin"], &dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("'--modle'") && stderr.contains("Usage"),
        "{stderr}"
    );
    // naming the model itself as the export's output
    let out = run("export", &["m.bin"], &dir);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to write over it"));
    assert_eq!(std::fs::read(&model).unwrap(), before);
    for args in [
        &["--epochs", "0"][..],
        &["--seed", "x"],
        &["--out"],
        &["--outt", "x.bin"],
    ] {
        let out = run("mnist", args, &dir);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && (stderr.contains("Usage") || stderr.contains("'--")),
            "{args:?}: {stderr}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn outputs_are_checked_before_anything_runs() {
    let dir = temp_dir("outputs");
    let notes = dir.join("notes.txt");
    std::fs::write(&notes, "mine").unwrap();
    for (args, says) in [
        (&["--out", "nodir/x.bin"][..], "nodir/x.bin"),
        (&["--out", "notes.txt"], "is not a lenet5 model"),
        (&["--resume", "missing.ckpt"], "--resume: missing.ckpt"),
        (&["--resume", "notes.txt"], "a lenet5 checkpoint"),
    ] {
        let out = run("mnist", args, &dir);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(says),
            "{args:?}: {stderr}"
        );
    }
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "mine");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["notes.txt"]);
    std::fs::remove_dir_all(&dir).unwrap();
}
