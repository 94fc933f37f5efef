"""``x.numel()`` of a tensor with a dynamic dim is traced as ``aten.sym_numel`` (Inkling2's
patch count): it lowers to the element count and follows the input's size."""

from __future__ import annotations

import numpy as np
import torch

from skillmill.ir.executor import NativeModel


class Flat(torch.nn.Module):
    def forward(self, x):
        n = x.numel()
        return {"flat": x.reshape(n) * 2, "halves": torch.ones(n // 2)}


def test_sym_numel_follows_the_input():
    native = NativeModel.from_torch(Flat().eval(), {"x": torch.randn(2, 4)},
                                    dynamic_dims={"x": {0: "batch"}})  # fmt: skip
    for batch in (2, 5):
        x = torch.randn(batch, 4)
        got = native.run({"x": x.numpy()})
        np.testing.assert_array_equal(got["flat"], (x.reshape(-1) * 2).numpy())
        assert got["halves"].shape == (batch * 2,)
