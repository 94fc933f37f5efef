"""Lowerings added for registry coverage, each checked against PyTorch on a small module:
sort, slice/masked scatter, upsampling, vector norms, all/any, batch norm on batch statistics."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from skillmill.ir.executor import NativeModel


def check(module: torch.nn.Module, *inputs: torch.Tensor, tol: float = 1e-5) -> NativeModel:
    module = module.eval()
    names = [f"x{i}" for i in range(len(inputs))]

    class Named(torch.nn.Module):  # keyword inputs, as transformers models take them
        def __init__(self):
            super().__init__()
            self.inner = module

        def forward(self, x0, x1=None, x2=None):
            return self.inner(*(x0, x1, x2)[: len(names)])

    feeds = dict(zip(names, inputs))
    native = NativeModel.from_torch(Named(), feeds, dynamic_dims={n: {} for n in names})
    with torch.no_grad():
        want = module(*inputs)
    got = native.run({k: v.numpy() for k, v in feeds.items()})
    value = next(iter(got.values()))
    assert value.shape == tuple(want.shape)
    np.testing.assert_allclose(value, want.numpy(), rtol=tol, atol=tol)
    return native


class Lambda(torch.nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *args):
        return self.fn(*args)


def test_sort_values_and_indices_descending_with_ties():
    x = torch.tensor([[3.0, 1.0, 3.0, 2.0], [0.5, 0.5, -1.0, 4.0]])
    native = check(Lambda(lambda t: torch.sort(t, dim=-1, descending=True, stable=True)[1].float()), x)
    assert "Sort" in native.graph.op_counts()
    check(Lambda(lambda t: torch.sort(t, dim=0)[0]), torch.randn(5, 3))


def test_slice_scatter_and_masked_scatter():
    check(Lambda(lambda x, y: torch.slice_scatter(x, y, dim=1, start=1, end=5, step=2)),
          torch.randn(2, 6), torch.randn(2, 2))  # fmt: skip
    mask = torch.tensor([[True, False, True], [False, False, True]])
    native = check(Lambda(lambda x, m, s: x.masked_scatter(m, s)), torch.zeros(2, 3), mask, torch.arange(6.0))
    assert "MaskedScatter" in native.graph.op_counts()


@pytest.mark.parametrize("kwargs", [
    {"scale_factor": 2, "mode": "nearest"},
    {"size": (5, 7), "mode": "nearest"},
    {"scale_factor": 2, "mode": "bilinear", "align_corners": False},
    {"size": (5, 7), "mode": "bilinear", "align_corners": True},
    {"size": (3, 3), "mode": "bilinear", "align_corners": False},
    # antialiased (SigLIP 2's position-embedding resize, LFM2-VL; bicubic in Unlimited-OCR):
    # shrinking widens the filter, growing is plain interpolation, and the two mix per axis
    {"size": (3, 2), "mode": "bilinear", "antialias": True},
    {"size": (7, 4), "mode": "bilinear", "antialias": True},
    {"size": (9, 13), "mode": "bilinear", "antialias": True, "align_corners": True},
    {"size": (3, 10), "mode": "bicubic", "antialias": True},
    {"size": (2, 5), "mode": "bicubic", "antialias": True, "align_corners": True},
    {"scale_factor": 0.5, "mode": "bilinear", "antialias": True},
])  # fmt: skip
def test_interpolate_matches_torch(kwargs):
    native = check(Lambda(lambda x: F.interpolate(x, **kwargs)), torch.randn(2, 3, 4, 6))
    if kwargs.get("antialias"):  # the antialiased kernel, not a plain resize that happens to agree
        resize = next(n for n in native.graph.nodes if n.op == "Resize")
        assert resize.attrs.get("antialias") is True


def test_vector_norms_and_all_any():
    check(Lambda(lambda x: torch.linalg.vector_norm(x, dim=-1, keepdim=True)), torch.randn(3, 5))
    check(Lambda(lambda x: F.normalize(x, dim=-1)), torch.randn(3, 5))
    check(Lambda(lambda x: torch.linalg.vector_norm(x, ord=float("inf"), dim=0)), torch.randn(3, 5))
    check(Lambda(lambda x: torch.where(torch.all(x > -10), x, -x)), torch.randn(3, 5))


def test_batch_norm_on_batch_statistics():
    check(torch.nn.BatchNorm2d(3, track_running_stats=False), torch.randn(4, 3, 5, 5), tol=1e-4)


def test_histc_counts_like_torch():
    ids = torch.tensor([[0.0, 3.0, 3.0], [1.0, 7.0, 2.5]])
    check(Lambda(lambda t: torch.histc(t, bins=4, min=0, max=3)), ids)  # 7 is outside; 3 -> last bin
    check(Lambda(lambda t: torch.histc(t, bins=5)), torch.randn(4, 6))  # the data's own range


def test_grouped_matmul_equals_transformers_fallback():
    import transformers.integrations.moe  # noqa: F401  (registers torch.ops.transformers.*)

    op = torch.ops.transformers.grouped_mm_fallback
    x, weight = torch.randn(7, 4), torch.randn(3, 4, 5)
    offs = torch.tensor([2, 2, 6])  # expert 1 gets no rows; row 6 is past the last offset
    native = check(Lambda(lambda a, w, o: op(a, w, o)), x, weight, offs)
    assert "GroupedMatMul" in native.graph.op_counts()


def test_boolean_mask_index_covers_its_rank():
    x, mask = torch.randn(2, 3, 4), torch.tensor([[True, False, True], [False, True, True]])
    check(Lambda(lambda t, m: t[m]), x, mask)
    check(Lambda(lambda t, m, v: t.index_put((m,), v)), x, mask, torch.randn(4, 4))


def test_bucketize_left_and_right():
    x, edges = torch.tensor([[0.0, 1.0, 2.5], [3.0, -1.0, 9.0]]), torch.tensor([1.0, 2.0, 3.0])
    check(Lambda(lambda t, b: torch.bucketize(t, b).float()), x, edges)
    check(Lambda(lambda t, b: torch.bucketize(t, b, right=True).float()), x, edges)


@pytest.mark.parametrize("mode,padding,align", [("bilinear", "zeros", False), ("bilinear", "border", True),
                                                ("nearest", "zeros", False)])  # fmt: skip
def test_grid_sample_matches_torch(mode, padding, align):
    grid = torch.rand(2, 3, 5, 2) * 2.4 - 1.2  # some points fall outside the image
    check(Lambda(lambda x, g: F.grid_sample(x, g, mode=mode, padding_mode=padding, align_corners=align)),
          torch.randn(2, 3, 4, 6), grid)  # fmt: skip


def test_data_dependent_branch_is_kept_as_a_runtime_assertion():
    from skillmill.ir.errors import ExecutionError

    def branchy(x):
        if (x > 0).any():  # Python branching on values: plain torch.export refuses it
            return x * 2
        return x - 1

    native = check(Lambda(branchy), torch.rand(2, 3) + 0.1)
    assert native.graph.op_counts().get("AssertScalar", 0) >= 1  # survived dead-code elimination
    native.run({"x0": (torch.rand(2, 3) + 0.5).numpy()})  # the branch the export took: fine
    with pytest.raises(ExecutionError, match="AssertScalar"):
        native.run({"x0": -torch.rand(2, 3).numpy()})  # the other branch: refused, never wrong


def test_unfold_and_erfinv():
    check(Lambda(lambda t: t.unfold(1, 3, 2)), torch.randn(2, 9, 4))
    check(Lambda(lambda t: torch.erfinv(t)), torch.rand(3, 7) * 1.98 - 0.99, tol=1e-5)


def test_cummax_cummin_and_as_strided():
    x = torch.tensor([[1.0, 1.0, 0.0, 1.0, 2.0, 2.0], [3.0, -1.0, 3.0, 0.0, 4.0, 4.0]])
    check(Lambda(lambda t: torch.cummax(t, 1).indices.float() + torch.cummax(t, 1).values), x)
    check(Lambda(lambda t: torch.cummin(t, 1).indices.float() * 10 + torch.cummin(t, 1).values), x)
    windows = Lambda(lambda t: (t * 2).as_strided((2, 4, 2), (6, 1, 2), 1))  # overlapping windows
    native = check(windows, torch.randn(3, 6))
    assert "AsStrided" in native.graph.op_counts()


def test_prod_over_one_int_dim_and_log2_log10():
    # Mistral 3's vision tower counts patches as image_sizes.prod(dim=-1) (aten.prod.dim_int)
    sizes = torch.tensor([[4, 6], [2, 8]])
    native = check(Lambda(lambda t: t.prod(dim=-1) + t.prod(0, keepdim=True).sum()), sizes)
    assert native.graph.op_counts().get("ReduceProd") == 2
    check(Lambda(lambda t: torch.log2(t) * 3 + torch.log10(t)), torch.rand(3, 5) * 100 + 0.01)
    check(Lambda(lambda t: torch.log2(t)), torch.tensor([1, 8, 1024]))  # int in, float out


def test_a_split_into_one_piece_is_still_a_sequence():
    # LW-DETR and VibeVoice split by a one-element size list and read the piece with getitem
    check(Lambda(lambda t: torch.split_with_sizes(t, [t.shape[1]], dim=1)[0] * 2), torch.randn(2, 6))


def test_repeat_interleave_by_a_tensor_and_nonzero_have_data_dependent_lengths():
    # FastSpeech 2 expands phonemes by predicted durations; OneFormer and Qwen 4 take nonzero
    expand = Lambda(lambda x, r: torch.repeat_interleave(x, r, dim=0) * 2)
    native = check(expand, torch.randn(4, 3), torch.tensor([2, 0, 3, 1]))
    got = native.run({"x0": np.ones((4, 3), np.float32), "x1": np.array([1, 4, 0, 0])})
    assert next(iter(got.values())).shape == (5, 3)  # the length follows the run's repeats
    check(Lambda(lambda x: torch.nonzero(x > 0).float()), torch.randn(3, 5))
