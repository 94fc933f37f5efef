"""Complex values inside a graph (ir/frontends/complex_pairs.py): rotary embeddings written
with ``torch.polar`` / ``view_as_complex`` / ``view_as_real``, as DeepSeek-V2 and Llama 4 do,
convert and match torch at other sequence lengths; complex inputs and outputs are refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from skillmill.ir.errors import UnsupportedOp
from skillmill.ir.executor import NativeModel


class ComplexRope(torch.nn.Module):
    """DeepSeek-V2's ``apply_rotary_emb`` and Llama 4's: frequencies as unit complex numbers,
    the query's channel pairs as complex numbers, one complex multiply; plus the other ops a
    rope path applies to complex values (slice, unsqueeze, expand, permute, cat, scaling)."""

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(8, 16)
        self.register_buffer("inv_freq", 1.0 / (10000 ** (torch.arange(0, 8, 2).float() / 8)))

    def forward(self, x):
        batch, seq, _ = x.shape
        q = self.proj(x).view(batch, seq, 2, 8).transpose(1, 2)  # (batch, heads, seq, 8)
        positions = torch.arange(seq, dtype=torch.float32)
        freqs = positions[:, None] * self.inv_freq[None, :]
        freqs_cis = torch.polar(torch.ones_like(freqs), freqs) * 1.0  # (seq, 4) complex
        q_ = torch.view_as_complex(q.float().reshape(*q.shape[:-1], -1, 2))
        rotated = q_ * freqs_cis[None, None, :, :]
        halves = torch.cat([rotated[..., :2], rotated[..., 2:] * 0.5], dim=-1)
        halves = (halves + rotated).permute(0, 2, 1, 3).expand(batch, seq, 2, 4)
        plain = torch.view_as_real(halves * freqs.cos()[None, :, None, :]).flatten(3)
        return {"rotated": torch.view_as_real(rotated).flatten(3), "mixed": plain}


def test_complex_rope_converts_and_matches_torch():
    model = ComplexRope().eval()
    example = {"x": torch.randn(2, 5, 8)}
    native = NativeModel.from_torch(model, example, dynamic_dims={"x": {0: "batch", 1: "seq"}})
    for batch, seq in ((2, 5), (3, 9)):
        x = torch.randn(batch, seq, 8, generator=torch.Generator().manual_seed(seq))
        with torch.no_grad():
            want = model(x=x)
        got = native.run({"x": x.numpy()})
        for name, value in want.items():
            np.testing.assert_allclose(got[name], value.numpy(), rtol=1e-5, atol=1e-6, err_msg=name)


class ComplexOut(torch.nn.Module):
    def forward(self, x):
        return torch.polar(torch.ones_like(x), x)


def test_complex_output_is_refused():
    with pytest.raises(UnsupportedOp, match="complex output"):
        NativeModel.from_torch(ComplexOut().eval(), {"x": torch.randn(2, 3)})


class Spectral(torch.nn.Module):
    """FNet's token mixing (``fftn(x).real``) and a vocoder head's inverse STFT step
    (NeuCodec, XCodec2: ``irfft(polar(magnitude, phase))``)."""

    def forward(self, x):
        mixed = torch.fft.fftn(x, dim=(1, 2)).real
        spectrum = torch.polar(x.abs() + 0.1, x)
        return {"mixed": mixed, "frames": torch.fft.irfft(spectrum, 10, dim=-1, norm="backward")}


def test_fft_on_pairs_matches_torch():
    model = Spectral().eval()
    native = NativeModel.from_torch(model, {"x": torch.randn(2, 4, 6)},
                                    dynamic_dims={"x": {0: "batch", 1: "seq"}})  # fmt: skip
    for batch, seq in ((2, 4), (3, 7)):
        x = torch.randn(batch, seq, 6, generator=torch.Generator().manual_seed(seq))
        with torch.no_grad():
            want = model(x=x)
        got = native.run({"x": x.numpy()})
        for name, value in want.items():
            np.testing.assert_allclose(got[name], value.numpy(), rtol=1e-5, atol=1e-5, err_msg=name)
