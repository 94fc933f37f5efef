"""The ops every skill runs on model outputs: mean pooling, L2 normalisation, top-k."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from native_helpers import native, nerr, rand


@pytest.mark.parametrize("b,s,h", [(1, 1, 1), (2, 7, 384), (3, 128, 33), (0, 4, 8), (2, 0, 5)])
@pytest.mark.parametrize("mask_dtype", [np.int64, np.bool_, np.float32, None])
def test_mean_pool(isa, rng, b, s, h, mask_dtype):
    hidden = rand(rng, b, s, h)
    mask = None
    m64 = np.ones((b, s))
    if mask_dtype is not None:
        m64 = (rng.random((b, s)) > 0.3).astype(np.float64)
        mask = m64.astype(mask_dtype)
    ref = (hidden * m64[..., None]).sum(1) / np.maximum(m64.sum(1, keepdims=True), 1e-9)
    assert nerr(native.mean_pool(hidden, mask), ref) < 2e-6


def test_mean_pool_matches_sentence_transformers_formula(rng):
    hidden, mask = rand(rng, 2, 9, 16), np.array([[1] * 9, [1] * 4 + [0] * 5])
    th, tm = (
        torch.from_numpy(hidden.astype(np.float64)),
        torch.from_numpy(mask).unsqueeze(-1).double(),
    )
    ref = (th * tm).sum(1) / torch.clamp(tm.sum(1), min=1e-9)
    assert nerr(native.mean_pool(hidden, mask), ref.numpy()) < 2e-6


@pytest.mark.parametrize("shape", [(1,), (3, 384), (2, 5, 7), (0, 4), (4, 0)])
def test_l2_normalize(isa, rng, shape):
    x = rand(rng, *shape)
    ref = torch.nn.functional.normalize(torch.from_numpy(x.astype(np.float64)), dim=-1).numpy()
    assert nerr(native.l2_normalize(x), ref) < 2e-6
    z = np.zeros((2, 3), np.float32)
    assert np.array_equal(native.l2_normalize(z), z)  # eps guards the zero vector


@pytest.mark.parametrize(
    "shape,k", [((10,), 3), ((4, 1000), 5), ((2, 3, 17), 17), ((3, 8), 0), ((0, 5), 2), ((5, 1), 1)]
)
def test_topk(rng, shape, k):
    x = rand(rng, *shape)
    values, indices = native.topk(x, k)
    ref = np.argsort(-x, axis=-1, kind="stable")[..., :k]
    assert np.array_equal(indices, ref)
    assert np.array_equal(values, np.take_along_axis(x, ref, -1))


def test_topk_ties_and_nan():
    x = np.array([[1.0, 3.0, 3.0, np.nan, -np.inf, 3.0]], np.float32)
    values, indices = native.topk(x, 4)
    assert indices.tolist() == [[3, 1, 2, 5]]
    assert np.isnan(values[0, 0]) and values[0, 1:].tolist() == [3.0, 3.0, 3.0]
