"""fuse_gelu_tanh (issue 26): GPT-2's GELU written out as eight elementwise nodes becomes one
Gelu(approximate="tanh"), which fuse_linear folds into the Linear before it; a look-alike with
other constants is left alone."""

import math

import numpy as np
import torch

from skillmill.ir.executor import Executor
from skillmill.ir.frontends.pytorch import convert_from_pytorch
from skillmill.ir.numerics import relative_error
from skillmill.ir.passes import optimize_graph


class Ffn(torch.nn.Module):
    def __init__(self, cubic: float = 0.044715):
        super().__init__()
        torch.manual_seed(0)
        self.up, self.down, self.cubic = torch.nn.Linear(16, 64), torch.nn.Linear(64, 16), cubic

    def forward(self, x):
        h = self.up(x)  # transformers' NewGELUActivation, spelled out as it is there
        h = (
            0.5
            * h
            * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (h + self.cubic * torch.pow(h, 3.0))))
        )
        return self.down(h)


def _optimised(module):
    x = torch.randn(2, 5, 16)
    graph, report = optimize_graph(convert_from_pytorch(module, {"x": x}))
    return graph, report


def test_new_gelu_becomes_one_activation_inside_the_linear():
    module = Ffn().eval()
    graph, report = _optimised(module)
    assert report["pass_stats"]["fuse_gelu_tanh"] == 1
    ops = [n.op for n in graph.nodes]
    assert "Tanh" not in ops and "Pow" not in ops, ops
    assert any(n.op == "Linear" and n.attrs.get("activation") == "gelu_tanh" for n in graph.nodes)
    x = torch.randn(3, 5, 16)  # the export keeps dim 1 static here (no dynamic-dim hint)
    with torch.no_grad():
        want = module(x).numpy()
    got = Executor(graph).run({"x": x.numpy()})
    assert relative_error(next(iter(got.values())), want) <= 1e-5


def test_other_constants_are_not_gelu():
    graph, report = _optimised(Ffn(cubic=0.04).eval())
    assert report["pass_stats"]["fuse_gelu_tanh"] == 0
    assert "Tanh" in [n.op for n in graph.nodes]
