"""The design's MojoMaxIRConverter API end to end, the TensorFlow install hint, and coverage."""

from __future__ import annotations

import numpy as np
import pytest

from skillmill.ir.converter import MojoMaxIRConverter
from skillmill.ir.errors import MissingDependency
from skillmill.ir.mojomodel import load_mojomodel

import tiny_models


def test_convert_optimize_compile_load(tmp_path):
    model = tiny_models.build("gpt2")
    converter = MojoMaxIRConverter()
    ir = converter.convert_from_pytorch(model, tiny_models.inputs("gpt2"))
    optimised = converter.optimize_max_ir(ir, memory_bindings={"batch": 1, "seq": 16})
    assert "fuse_attention" in optimised.metadata["optimizations_applied"]
    assert converter.last_report["memory_plan"]["arena_bytes"] > 0
    path = converter.compile_to_mojomodel(optimised, tmp_path / "gpt2")
    loaded = load_mojomodel(path)
    feeds = tiny_models.inputs("gpt2", 2, 5, seed=9)
    import torch

    with torch.no_grad():
        want = model(**feeds).last_hidden_state.numpy()
    got = loaded.run({k: v.numpy() for k, v in feeds.items()})["last_hidden_state"]
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()


def test_tensorflow_missing_is_a_clear_error():
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        with pytest.raises(MissingDependency, match=r"skillmill\[tensorflow\]"):
            MojoMaxIRConverter().convert_from_tensorflow(object(), {"x": [1, 2]})
    else:
        pytest.skip("TensorFlow is installed")
