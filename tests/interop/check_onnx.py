"""Runs an ONNX file exported by `cargo run --example export -- --onnx` in onnxruntime on the
inputs the crate wrote with `--reference PREFIX`, and compares the scores with the crate's:
within 1e-4 of each other, and the same predicted class for every image.

python3 tests/interop/check_onnx.py model.onnx PREFIX
"""
import sys

import numpy as np
import onnx
import onnxruntime

path, prefix = sys.argv[1], sys.argv[2]
onnx.checker.check_model(onnx.load(path), full_check=True)
session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
(model_input,) = session.get_inputs()
dims = [d for d in model_input.shape[1:]]
inputs = np.fromfile(f"{prefix}.inputs.f32", dtype="<f4").reshape([-1] + dims)
expected = np.fromfile(f"{prefix}.scores.f32", dtype="<f4").reshape(len(inputs), -1)
(scores,) = session.run(None, {model_input.name: inputs})
assert scores.shape == expected.shape, (scores.shape, expected.shape)
worst = float(np.abs(scores - expected).max())
differ = int((scores.argmax(1) != expected.argmax(1)).sum())
print(f"{path}: {len(inputs)} images, worst score difference {worst:.2e}, {differ} predictions differ")
assert worst <= 1e-4, worst
assert differ == 0, differ
