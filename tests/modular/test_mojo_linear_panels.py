"""skillmill's Mojo Linear kernel at any SIMD width, for any N, K and row count M.

The kernel packs W into panels of NR = 2 * width columns.  A last panel that is only partly
filled (N not a multiple of NR) must still run on the kernel, storing just its valid columns:
on an AVX-512 CPU (width 16, NR 32) N = 48 is one full panel and half a panel.  The widths run
here are 4, 8, 16 and the host's: Mojo's SIMD[float32, W] is legalised on any x86 CPU, so the
AVX-512 panel layout runs on an AVX2 machine too.  Every result is compared with the IR's
numpy reference at 1e-5."""

import numpy as np
import pytest

from modular_helpers import reference, relative_error


def _host_width() -> int:
    from skillmill.engines.modular import mojo_kernels

    return mojo_kernels.simd_width()


WIDTHS = sorted({4, 8, 16, _host_width()})

# (K, N, activation, bias, residual).  Against panels of 8 / 16 / 32 columns: N = 48 is whole
# panels at widths 4 and 8 and 1.5 panels at 16 (a full vector and an empty one in the last
# panel); 50 and 71 leave a partial vector; 7 and 1 are narrower than one vector.  K is odd
# but for the first.
CASES = [
    (48, 48, "gelu", True, False),
    (33, 50, "none", True, True),
    (5, 7, "relu", False, False),
    (3, 1, "tanh", True, False),
    (77, 71, "silu", False, True),
]
# M = 1, 7, 69, 200: one row, fewer rows than the microkernel's MR, several row blocks with a
# remainder, and the multi-threaded path (200 * 77 * 71 > 2**20 multiply-adds)
ROWS = [(1, 1), (1, 7), (3, 23), (2, 100)]


def linear_cases_graph():
    """One Linear per case, each on its own input, with symbolic batch and sequence dims."""
    from skillmill.ir.graph import Graph, TensorSpec

    rng = np.random.default_rng(17)
    g = Graph(name="linear_panels")
    for i, (k, n, act, bias, res) in enumerate(CASES):
        g.inputs[f"x{i}"] = TensorSpec("float32", ["batch", "seq", k])
        g.weights[f"w{i}"] = (rng.standard_normal((n, k)) / np.sqrt(k)).astype(np.float32)
        inputs = [f"x{i}", f"w{i}", ""]
        if bias:
            g.weights[f"b{i}"] = rng.standard_normal(n).astype(np.float32)
            inputs[2] = f"b{i}"
        if res:
            g.inputs[f"r{i}"] = TensorSpec("float32", ["batch", "seq", n])
            inputs.append(f"r{i}")
        if not bias and not res:
            inputs = inputs[:2]
        g.add_node("Linear", inputs, outputs=[f"y{i}"], attrs={"activation": act}, name=f"fc{i}")
    g.outputs = [f"y{i}" for i in range(len(CASES))]
    g.validate()
    return g


def _feeds(graph, batch: int, seq: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal((batch, seq, spec.shape[-1])).astype(np.float32)
            for name, spec in graph.inputs.items()}  # fmt: skip


def _check(run, graph) -> None:
    for seed, (batch, seq) in enumerate(ROWS):
        feeds = _feeds(graph, batch, seq, seed)
        want = reference(graph, feeds)
        got = run(feeds)
        for i, (k, n, *_rest) in enumerate(CASES):
            name = f"y{i}"
            assert got[name].shape == (batch, seq, n), (name, got[name].shape)
            error = relative_error(got[name], want[name])
            assert error <= 1e-5, f"K={k} N={n} M={batch * seq}: relative error {error:.2e}"


@pytest.mark.parametrize("width", WIDTHS)
def test_linear_custom_op_lowers_for_any_n(width, monkeypatch):
    """Every Linear becomes skillmill_linear in the MAX graph (none falls back to MAX's matmul
    for an N that is not a whole number of panels) and equals the IR reference."""
    from skillmill.engines.modular import custom_op, mojo_kernels
    from skillmill.engines.modular.max_model import MaxModel

    monkeypatch.setattr(mojo_kernels, "simd_width", lambda: width)  # as on a CPU of this width
    graph = linear_cases_graph()
    hook = custom_op.custom_kernels()["Linear"]
    taken = []

    def linear(lw, node, attrs):
        out = hook(lw, node, attrs)
        taken.append((node.name, out is not None))
        return out

    model = MaxModel.from_graph(graph, "cpu", custom_kernels={"Linear": linear},
                                custom_extensions=[custom_op.package()])  # fmt: skip
    assert taken == [(f"fc{i}", True) for i in range(len(CASES))], f"width {width}: {taken}"
    assert model.custom_ops == ["skillmill_linear"]
    _check(model.run, graph)


@pytest.mark.parametrize("width", WIDTHS)
def test_mojo_target_linear_any_n(width, monkeypatch):
    """The Mojo path's own module (the same microkernel) at each width: every Linear runs on
    the Mojo kernel, never the executor's fallback, writes [M, N] itself (no padded buffer) and
    equals the IR reference."""
    from skillmill.engines.modular import mojo_kernels, mojo_model

    def strict(fast, reference):  # a Linear the kernel hands back fails instead of falling back
        def kernel(args, attrs):
            result = fast(args, attrs)
            assert result is not None, "the Mojo Linear kernel refused its inputs"
            return result

        return kernel

    monkeypatch.setattr(mojo_model, "_with_fallback", strict)
    graph = linear_cases_graph()
    model = mojo_model.MojoModel.from_graph(graph, width=width)
    assert model.simd_width == width and model.mojo_nodes == {"Linear": len(CASES)}
    planned = sorted(spec["N"] for spec in mojo_kernels.plan_kernels(graph, width).linear.values())
    assert planned == sorted(n for _k, n, *_rest in CASES)  # not padded to whole panels
    _check(model.run, graph)


def test_pack_weight_pads_the_last_panel():
    from skillmill.engines.modular.mojo_kernels import pack_weight

    w = np.arange(7 * 3, dtype=np.float32).reshape(7, 3) + 1
    packed = pack_weight(w, 4)
    assert packed.shape == (2, 3, 4)
    assert np.array_equal(packed[0], w[:4].T)
    assert np.array_equal(packed[1][:, :3], w[4:].T) and not packed[1][:, 3].any()


def test_a_changed_template_changes_the_compile_key(tmp_path, monkeypatch):
    """The custom-op package is named by a digest of its rendered source and that name is part
    of the MAX graph's cache key, so editing a kernel template never loads a stale graph; the
    lowering hooks' own source (custom_op.py, mojo_kernels.py) is in the lowering digest."""
    import shutil

    from modular_helpers import ln_linear_graph

    from skillmill.engines.modular import cache, custom_op, lowering, mojo_build

    monkeypatch.setenv("MODULAR_CACHE_DIR", str(tmp_path / "cache"))
    original = custom_op.folder(8)
    copy = tmp_path / "templates" / "mojo"
    shutil.copytree(mojo_build.template_dir(), copy)
    linear = copy / "linear.mojo.jinja"
    linear.write_text(linear.read_text() + "\n# edited\n")
    monkeypatch.setattr(mojo_build, "template_dir", lambda: copy)
    edited = custom_op.folder(8)
    assert edited.name != original.name
    graph = ln_linear_graph()
    keys = {cache.graph_key(graph, "cpu", {"custom": ["Linear"], "extensions": [folder.name]})
            for folder in (original, edited)}  # fmt: skip
    assert len(keys) == 2
    names = {p.name for p in lowering.lowering_sources()}
    assert {"custom_op.py", "mojo_kernels.py", "lowering.py"} <= names
