"""Opens a safetensors file exported by `cargo run --example export` with the Python
`safetensors` package and compares every tensor with the values the crate wrote as JSON.

python3 tests/interop/check_safetensors.py lenet5.safetensors values.json
"""
import json
import sys

import numpy as np
from safetensors.numpy import load_file

tensors = load_file(sys.argv[1])
expected = json.load(open(sys.argv[2]))
assert tensors["rbf.weight"].shape == (10, 84), tensors["rbf.weight"].shape
for name, want in expected.items():
    got = tensors[name]
    assert got.dtype == np.float32, (name, got.dtype)
    assert list(got.shape) == want["shape"], (name, got.shape, want["shape"])
    assert np.array_equal(got.ravel(), np.array(want["values"], dtype=np.float32)), name
assert set(tensors) == set(expected) | {"rbf.weight"}, sorted(tensors)
print(f"{len(expected)} tensors match: " + ", ".join(f"{n} {list(tensors[n].shape)}" for n in expected))
