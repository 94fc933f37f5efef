"""Plain numbers among a model's outputs (MaskFormer-Swin's feature map sizes, GOT-OCR2's
counts) are not results: the graph keeps the tensors, as the torch side's flattening does."""

from __future__ import annotations

import numpy as np
import torch

from skillmill.ir.executor import NativeModel


class WithSizes(torch.nn.Module):
    def forward(self, x):
        return {"y": x * 2, "sizes": (x.shape[1], 16), "count": 1}


def test_number_outputs_are_left_out():
    native = NativeModel.from_torch(WithSizes().eval(), {"x": torch.randn(2, 4)},
                                    dynamic_dims={"x": {0: "batch", 1: "seq"}})  # fmt: skip
    x = torch.randn(3, 5)
    got = native.run({"x": x.numpy()})
    assert set(got) == {"y"}
    np.testing.assert_array_equal(got["y"], (x * 2).numpy())
