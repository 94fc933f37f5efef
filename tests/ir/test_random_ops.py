"""A graph whose output depends on torch's random generator (VITS's prior noise, Reformer's LSH
rotations, VibeVoice's latent noise) is refused with that reason, never run with other numbers."""

from __future__ import annotations

import pytest
import torch

from skillmill.ir.errors import UnsupportedOp
from skillmill.ir.executor import NativeModel


class Noisy(torch.nn.Module):
    def forward(self, x):
        return x + torch.randn_like(x) * 0.5 + torch.randn(x.shape[-1])


def test_sampling_is_refused_with_the_reason():
    with pytest.raises(UnsupportedOp, match="random generator") as caught:
        NativeModel.from_torch(Noisy().eval(), {"x": torch.randn(2, 3)})
    assert caught.value.op.startswith("aten.randn")
