"""PyTorch frontend: ``torch.export`` with dynamic batch/sequence dims, decomposed to core ATen,
then lowered op by op onto the IR's op table (``ATEN``, in ``aten.py``).

An ATen op missing from ``ATEN`` raises ``UnsupportedOp(op, model_name)``; nothing is dropped
except the metadata assertions listed in ``_NO_OPS``, which have no effect on values.  The
export's runtime assertions on scalars (``_assert_scalar``) are kept as ``AssertScalar`` nodes.
"""

from __future__ import annotations

import inspect
import operator
import re
from contextlib import contextmanager, nullcontext
from typing import Any, Iterator

import numpy as np

from ..errors import ConversionError, UnsupportedOp
from ..graph import Graph, TensorSpec, ref, rename_in_attr
from .aten import ATEN
from .complex_pairs import is_complex, lower_complex
from .export_patches import vision_grid_helpers

TOKEN_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "position_ids",
                "decoder_input_ids", "decoder_attention_mask", "labels")  # fmt: skip


# -- entry point ------------------------------------------------------------------------------
def convert_from_pytorch(
    model: Any,
    example_inputs: dict[str, Any] | None = None,
    input_shapes: dict[str, Any] | None = None,
    dynamic_dims: dict[str, dict[int, str]] | None = None,
    model_name: str | None = None,
) -> Graph:
    """Export ``model`` and lower it to a Graph.

    ``example_inputs``: name -> tensor/array, passed to ``model(**inputs)``.  Or ``input_shapes``:
    name -> shape, from which zero-filled int64 (token inputs) / float32 tensors are built.
    ``dynamic_dims``: name -> {dim: symbol}; by default dim 0 is "batch" and dim 1 of 2-D+ token
    inputs is "seq".  With the default, a model whose code fixes one of those dims (a reshape to
    a constant patch count, say) is retried with only the batch dynamic, then with static shapes;
    ``graph.metadata["dynamic_dims"]`` says which held.
    """
    import torch

    name = model_name or _model_name(model)
    inputs = _example_inputs(example_inputs, input_shapes)
    ladder = [dynamic_dims] if dynamic_dims is not None else dims_ladder(inputs)
    eager = eager_attention_agrees(model, inputs)
    for attempt, dims in enumerate(ladder):
        try:
            exported = export_model(model, inputs, dims, name, eager_attention=eager)
            graph = _Lowering(exported, name, dims).run()
            break
        except ConversionError as exc:
            if attempt == len(ladder) - 1 or not _about_dynamic_dims(exc):
                raise
    graph.metadata.update(
        {"source": "pytorch", "model_name": name, "torch_version": str(torch.__version__),
         "model_type": getattr(getattr(model, "config", None), "model_type", None),
         "dynamic_dims": dims, "eager_attention": eager}  # fmt: skip
    )
    return graph


def lower_exported(exported: Any, name: str) -> Graph:
    """An already exported and decomposed program (``torch.export`` of a wrapper the caller
    built, with its own dynamic shapes: a decode step, say) lowered to a Graph."""
    import torch

    graph = _Lowering(exported, name, {}).run()
    graph.metadata.update({"source": "pytorch", "model_name": name, "torch_version": str(torch.__version__)})
    return graph


def dims_ladder(inputs: dict[str, Any]) -> list[dict[str, dict[int, str]]]:
    """The dynamic-dim choices to try in turn: batch and sequence, batch only, none."""
    full = default_dynamic_dims(inputs)
    batch_only = {k: {d: n for d, n in v.items() if d == 0} for k, v in full.items()}
    ladder = [full, batch_only, {}]
    return [d for i, d in enumerate(ladder) if d not in ladder[:i]]


# Messages of export/lowering failures that a less dynamic export can avoid: a symbolic size
# (s12, 128*s41) in a shape error, a violated constraint, a guard or specialisation.
_DYNAMIC_HINTS = re.compile(r"\bs\d+\b|onstraint|speciali[sz]|guard|symbolic|Dim\.|dynamic", re.I)


def _about_dynamic_dims(exc: Exception) -> bool:
    text = f"{exc} {exc.__cause__ or ''}"
    return bool(_DYNAMIC_HINTS.search(text))


def default_dynamic_dims(inputs: dict[str, Any]) -> dict[str, dict[int, str]]:
    dims: dict[str, dict[int, str]] = {}
    for key, value in inputs.items():
        shape = tuple(value.shape)
        if not shape:
            continue
        dims[key] = {0: "batch"}
        is_token = key in TOKEN_INPUTS or value.dtype.is_floating_point is False
        if len(shape) >= 2 and is_token:
            dims[key][1] = "decoder_seq" if key.startswith("decoder_") else "seq"
    return dims


def export_model(model: Any, inputs: dict[str, Any], dims: dict[str, dict[int, str]], name: str,
                 eager_attention: bool = True, positional: bool = False, decompose: bool = True):  # fmt: skip
    """torch.export with the requested dims dynamic, then ``run_decompositions()`` to core ATen.
    ``eager_attention``: trace the eager attention path (see ``eager_attention_agrees``).
    ``positional``: ``model`` takes the inputs by position, in ``inputs``' order (a wrapper's
    ``forward(*tensors)``).  ``decompose=False`` leaves the decomposition to the consumer
    (OpenVINO runs its own table, which keeps ops it converts whole)."""
    import torch
    from torch.export import Dim, export

    model = model.eval()
    # a dim exported at size 0 or 1 would be specialised; widen the examples to 2
    widened = {k: _widen(v, dims.get(k, {})) for k, v in inputs.items()}
    shapes: dict[str, Any] = {k: ({d: Dim.DYNAMIC for d in dims.get(k, {})} or None) for k in widened}
    if not positional and "use_cache" in inspect.signature(model.forward).parameters:
        widened["use_cache"], shapes["use_cache"] = False, None
    # by position, the shapes are those of forward's one parameter, ``*tensors`` (torch.export's form)
    args, kwargs = (tuple(widened.values()), {}) if positional else ((), widened)
    shapes = (tuple(shapes.values()),) if positional else shapes
    attention = switch_to_eager_attention(model) if eager_attention else nullcontext()
    try:
        with _no_cache(model), attention, vision_grid_helpers(), torch.no_grad():
            try:
                exported = export(model, args, kwargs, dynamic_shapes=shapes, strict=False)
            except Exception as exc:
                if "data-dependent" not in str(exc):
                    raise
                # Python branching on tensor values (`if mask.any():`): draft_export follows
                # the example's branch and records it as a runtime assertion, which the IR
                # keeps (AssertScalar), so other data fails loudly instead of going astray.
                exported = torch.export.draft_export(model, args, kwargs, dynamic_shapes=shapes,
                                                     strict=False)  # fmt: skip
            return exported.run_decompositions() if decompose else exported
    except Exception as exc:
        raise ConversionError(f"torch.export failed for {name}: {type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc  # fmt: skip


def _widen(tensor: Any, dims: dict[int, str]) -> Any:
    for dim in dims:
        if tensor.shape[dim] < 2:
            reps = [1] * tensor.dim()
            reps[dim] = 2 if tensor.shape[dim] == 1 else 0
            tensor = tensor.repeat(*reps) if tensor.shape[dim] == 1 else tensor
    return tensor


@contextmanager
def _no_cache(model: Any) -> Iterator[None]:
    """use_cache=False on every config in the module tree (a composite model's text config
    too): a cache object in the outputs cannot be exported."""
    configs = [c for c in _configs(model) if getattr(c, "use_cache", None) is not None]
    saved = [c.use_cache for c in configs]
    for config in configs:
        config.use_cache = False
    try:
        yield
    finally:
        for config, value in zip(configs, saved):
            config.use_cache = value


def _configs(model: Any) -> list[Any]:
    """Every distinct config object in the module tree and their sub-configs."""
    found: dict[int, Any] = {}
    pending = [getattr(m, "config", None) for m in getattr(model, "modules", lambda: [])()]
    pending.append(getattr(model, "config", None))
    while pending:
        config = pending.pop()
        if config is None or id(config) in found or not hasattr(config, "to_dict"):
            continue
        found[id(config)] = config
        pending += [getattr(config, key, None) for key in getattr(config, "sub_configs", {}) or {}]
    return list(found.values())


def eager_attention_agrees(model: Any, inputs: dict[str, Any], tolerance: float = 1e-5) -> bool:
    """Whether to trace the eager attention path: with SDPA, ``run_decompositions()`` fails on a
    view for GPT-2 and T5 (a known PyTorch issue), and the fusion passes fold the eager pattern
    further.  But a few models' eager and SDPA code compute different things (Aimv2's text
    tower, say), and the graph must equal what the model computes as configured: so eager is
    traced only when both give the same outputs on the example inputs."""
    import torch

    with _no_cache(model), torch.no_grad():
        configured = _flat_tensors(model(**inputs))
        with switch_to_eager_attention(model) as switched:
            if not switched:
                return True  # already eager (or no switchable attention): nothing to compare
            eager = _flat_tensors(model(**inputs))
    if len(eager) != len(configured):
        return False
    for got, want in zip(eager, configured):
        if got.shape != want.shape or got.dtype != want.dtype:
            return False
        if got.is_floating_point():
            scale = float(want.abs().max()) if want.numel() else 0.0
            diff = float((got - want).abs().max()) if want.numel() else 0.0
            if not (diff <= tolerance * max(scale, 1e-30) or diff == 0.0):
                return False
        elif not torch.equal(got, want):
            return False
    return True


def _flat_tensors(value: Any) -> list[Any]:
    import torch

    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict) or hasattr(value, "keys") and hasattr(value, "__getitem__"):
        return [t for key in value.keys() for t in _flat_tensors(value[key])]
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in _flat_tensors(item)]
    return []


@contextmanager
def switch_to_eager_attention(model: Any) -> Iterator[bool]:
    """Switch every config in the module tree to eager attention (restored afterwards); yields
    whether anything was switched."""
    configs = {id(c): c for c in _configs(model) if hasattr(c, "_attn_implementation_internal")}
    saved = {key: config._attn_implementation_internal for key, config in configs.items()}
    switched = False
    for key, config in configs.items():
        if isinstance(saved[key], str) and saved[key] != "eager":
            config._attn_implementation_internal = "eager"
            switched = True
    try:
        yield switched
    finally:
        for key, config in configs.items():
            config._attn_implementation_internal = saved[key]


def _model_name(model: Any) -> str:
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    return f"{type(model).__name__}" + (f" ({model_type})" if model_type else "")


def _example_inputs(example_inputs, input_shapes) -> dict[str, Any]:
    import torch

    if example_inputs:
        return {k: v if isinstance(v, torch.Tensor) else torch.as_tensor(np.asarray(v))
                for k, v in example_inputs.items() if v is not None}  # fmt: skip
    if not input_shapes:
        raise ConversionError("convert_from_pytorch needs example_inputs or input_shapes")
    made = {}
    for key, shape in input_shapes.items():
        if key in TOKEN_INPUTS or key.endswith("_ids") or key.endswith("mask"):
            made[key] = torch.ones(tuple(shape), dtype=torch.int64)
        else:
            made[key] = torch.zeros(tuple(shape), dtype=torch.float32)
    return made


# -- lowering ---------------------------------------------------------------------------------
_NO_OPS = {
    "aten._assert_tensor_metadata.default",
    "aten.sym_constrain_range_for_size.default", "aten.sym_constrain_range.default",
    "aten._assert_async.msg", "aten._assert_async.default",
}  # fmt: skip


def torch_dtype_name(dtype: Any) -> str:
    """The IR dtype; a complex one is its parts' (complex values are lowered as pairs, see
    ``complex_pairs.py``)."""
    name = str(dtype).replace("torch.", "")
    return {"float": "float32", "double": "float64", "half": "float16", "long": "int64",
            "int": "int32", "bool": "bool", "complex64": "float32", "cfloat": "float32",
            "complex128": "float64", "cdouble": "float64"}.get(name, name)  # fmt: skip


class _Lowering:
    def __init__(self, exported: Any, model_name: str, dims: dict[str, dict[int, str]]):
        self.ep = exported
        self.model_name = model_name
        self.dims = dims
        self.graph = Graph(name=model_name.split(" ")[0])
        self.names: dict[str, Any] = {}  # fx node name -> IR value name (or list for tuples)
        self.symbols: dict[str, str] = {}  # sympy symbol -> dim name

    def run(self) -> Graph:
        import torch
        from torch.export.graph_signature import InputKind

        fx_graph = self.ep.graph
        specs = {spec.arg.name: spec for spec in self.ep.graph_signature.input_specs}
        state = self.ep.state_dict
        constants = getattr(self.ep, "constants", {})
        for node in fx_graph.nodes:
            if node.op == "placeholder":
                spec = specs[node.name]
                if spec.kind == InputKind.USER_INPUT:
                    self._add_input(node)
                else:
                    target = spec.target
                    tensor = state[target] if target in state else constants[target]
                    array = tensor.detach().cpu().contiguous()
                    if array.dtype.is_floating_point and str(array.dtype) == "torch.bfloat16":
                        array = array.float()
                    if array.dtype.is_complex:  # stored as (real, imaginary) pairs
                        array = torch.view_as_real(array).contiguous()
                    self.graph.weights[target] = array.numpy().copy()
                    self.names[node.name] = target
            elif node.op == "call_function":
                self._lower(node)
            elif node.op == "output":
                self._outputs(node)
            else:
                raise UnsupportedOp(f"fx:{node.op}", self.model_name)
        return self.graph

    # inputs and outputs ---------------------------------------------------------------------
    def _add_input(self, node: Any) -> None:
        import torch

        val = node.meta.get("val")
        if not isinstance(val, torch.Tensor):  # python constants such as use_cache=False
            self.names[node.name] = []
            return
        if val.dtype.is_complex:  # only values inside the graph are lowered as pairs
            raise UnsupportedOp(f"{val.dtype} input", self.model_name, node.name)
        requested = self.dims.get(node.name, {})
        shape: list[Any] = []
        for axis, size in enumerate(val.shape):
            if isinstance(size, int):
                shape.append(size)
                continue
            symbol = str(size.node.expr)
            if symbol not in self.symbols:
                # export may give equal dims of two inputs separate symbols; they share a label
                self.symbols[symbol] = requested.get(axis, f"{node.name}_dim{axis}")
            shape.append(self.symbols[symbol])
        self.graph.inputs[node.name] = TensorSpec(torch_dtype_name(val.dtype), shape)
        self.names[node.name] = node.name

    def _outputs(self, node: Any) -> None:
        from torch.export.graph_signature import OutputKind

        values = node.args[0]
        flat = list(values) if isinstance(values, (list, tuple)) else [values]
        kinds = [spec.kind for spec in self.ep.graph_signature.output_specs]
        if len(kinds) == len(flat):
            # buffers the forward reassigns (CTRL's positional table) come first: not results
            flat = [item for item, kind in zip(flat, kinds) if kind == OutputKind.USER_OUTPUT]
        labels = _leaf_names(self.ep.call_spec.out_spec) if self.ep.call_spec.out_spec else []
        if len(labels) != len(flat):
            labels = [f"output_{i}" for i in range(len(flat))]
        used_as_output: set[str] = set()
        for label, item in zip(labels, flat):
            if item is None or not self.is_tensor(item):
                # plain numbers among the outputs (MaskFormer-Swin's feature map sizes): the
                # model's results are its tensors (runtime/outputs.py flattens tensors only)
                continue
            if is_complex(item):  # the pairs would pass for a real tensor of another shape
                raise UnsupportedOp("complex output", self.model_name, label)
            value = self.value(item)
            producer_outputs = {o for n in self.graph.nodes for o in n.outputs}
            if value in producer_outputs and value not in used_as_output and label not in self._all_names():
                self._rename(value, label)
            else:
                self.graph.add_node("Identity", [value], outputs=[label])
            used_as_output.add(label)
            self.graph.outputs.append(label)

    def _all_names(self) -> set[str]:
        return self.graph._taken_names()

    def _rename(self, old: str, new: str) -> None:
        mapping = {old: new}
        for n in self.graph.nodes:
            n.inputs = [mapping.get(i, i) for i in n.inputs]
            n.outputs = [mapping.get(o, o) for o in n.outputs]
            n.attrs = rename_in_attr(n.attrs, mapping)
        if old in self.graph.value_info:
            self.graph.value_info[new] = self.graph.value_info.pop(old)
        # later outputs may name the same fx value (Blip-2's logits twice): keep the map current
        for key, value in self.names.items():
            if value == old:
                self.names[key] = new
            elif isinstance(value, list):
                self.names[key] = [mapping.get(v, v) for v in value]

    # operands -------------------------------------------------------------------------------
    def value(self, arg: Any) -> str:
        """IR value name of a tensor argument."""
        import torch.fx

        if isinstance(arg, torch.fx.Node):
            name = self.names.get(arg.name)
            if name is None or isinstance(name, list):
                raise ConversionError(f"{self.model_name}: value {arg.name} is not a single tensor")
            return name
        raise ConversionError(f"{self.model_name}: expected a tensor, got {arg!r}")

    def attr(self, arg: Any) -> Any:
        """Attribute form of a python/SymInt argument; symbolic values become ``$ref``s."""
        import torch
        import torch.fx

        if isinstance(arg, torch.fx.Node):
            return ref(self.value(arg))
        if isinstance(arg, (list, tuple)):
            return [self.attr(a) for a in arg]
        if isinstance(arg, torch.dtype):
            return torch_dtype_name(arg)
        if isinstance(arg, (torch.device, torch.layout, torch.memory_format)):
            return str(arg)
        if isinstance(arg, float) and not np.isfinite(arg):
            return float(arg)
        return arg

    def is_tensor(self, arg: Any) -> bool:
        import torch
        import torch.fx

        return isinstance(arg, torch.fx.Node) and isinstance(arg.meta.get("val"), torch.Tensor)

    def emit(self, node: Any, op: str, inputs: list[str], attrs: dict | None = None,
             num_outputs: int = 1) -> list[str]:  # fmt: skip
        """Add an IR node for fx ``node``; its (first) output takes the fx name."""
        if num_outputs == 1:
            outputs = [node.name]
        else:
            outputs = [f"{node.name}:{i}" for i in range(num_outputs)]
        attrs = self.plain_attrs(attrs, node) if attrs else attrs
        self.graph.add_node(op, inputs, attrs=attrs, name=node.name, outputs=outputs)
        self._record_specs(node, outputs)
        return outputs

    def plain_attrs(self, value: Any, node: Any) -> Any:
        """Attributes as JSON values: a symbolic operand a lowering passed through as it came
        (an fx node) becomes a runtime ``$ref``; anything else non-JSON is an error naming the
        node, never a silent object in the graph."""
        import torch
        import torch.fx

        if isinstance(value, torch.fx.Node):
            return ref(self.value(value))
        if isinstance(value, dict):
            return {k: self.plain_attrs(v, node) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.plain_attrs(v, node) for v in value]
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, (torch.dtype, torch.device, torch.layout, torch.memory_format)):
            return self.attr(value)
        raise ConversionError(f"{self.model_name}: node {node.name} ({node.target}) has a "
                              f"non-constant attribute {type(value).__name__}")  # fmt: skip

    def temp(self, node: Any, op: str, inputs: list[str], attrs: dict | None = None) -> str:
        """An extra IR node that an fx node needs besides its main one."""
        name = self.graph.fresh_name(f"{node.name}_{op.lower()}")
        attrs = self.plain_attrs(attrs, node) if attrs else attrs
        self.graph.add_node(op, inputs, attrs=attrs, name=name, outputs=[name])
        return name

    def _record_specs(self, node: Any, outputs: list[str]) -> None:
        import torch

        val = node.meta.get("val")
        vals = val if isinstance(val, (list, tuple)) else [val]
        for out, v in zip(outputs, vals):
            if isinstance(v, torch.Tensor):
                shape = [self._dim(d) for d in v.shape] + ([2] if v.dtype.is_complex else [])
                self.graph.value_info[out] = TensorSpec(torch_dtype_name(v.dtype), shape)

    def _dim(self, size: Any) -> Any:
        if isinstance(size, int):
            return size
        text = str(size.node.expr)
        for symbol, label in sorted(self.symbols.items(), key=lambda kv: -len(kv[0])):
            text = text.replace(symbol, label)
        return text

    def out_dtype(self, node: Any) -> str | None:
        import torch

        val = node.meta.get("val")
        return torch_dtype_name(val.dtype) if isinstance(val, torch.Tensor) else None

    def _lower(self, node: Any) -> None:
        target = node.target
        key = _target_name(target)
        if key in _NO_OPS:
            return
        if target is operator.getitem:
            source, index = node.args
            produced = self.names.get(source.name)
            if not isinstance(produced, list):
                raise UnsupportedOp("getitem", self.model_name, f"on {source.name}")
            if not produced[index]:
                raise UnsupportedOp(f"{_target_name(source.target)}[{index}]", self.model_name,
                                    "this output is not computed by the IR")  # fmt: skip
            self.names[node.name] = produced[index]
            return
        if any(is_complex(a) for a in (node, *node.args, *_nested(node.args))):
            result = lower_complex(self, node, key)  # as (real, imaginary) pairs
        else:
            lowering = ATEN.get(key)
            if lowering is None:
                raise UnsupportedOp(key, self.model_name)
            result = lowering(self, node, *node.args, **node.kwargs)
        # an op that returns one tensor is a name; one that returns a sequence stays a list even
        # with one element (split_with_sizes(x, [n]) is read back through getitem)
        one_tensor = not isinstance(node.meta.get("val"), (list, tuple))
        if isinstance(result, list) and len(result) == 1 and one_tensor:
            result = result[0]
        self.names[node.name] = result


def _nested(args: Any) -> list[Any]:
    """The items of list operands (``cat``'s tensors, ``index``'s indices)."""
    return [item for arg in args if isinstance(arg, (list, tuple)) for item in arg]


def _target_name(target: Any) -> str:
    if isinstance(target, str):
        return target
    name = getattr(target, "__name__", str(target))
    module = getattr(target, "__module__", "")
    if module in ("_operator", "operator"):
        return f"operator.{name}"
    if module.startswith("torch") and not hasattr(target, "_schema"):
        return f"{module}.{name}"
    return str(target)


def _leaf_names(spec: Any, prefix: str = "") -> list[str]:
    if spec.is_leaf():
        return [prefix or "output"]
    children = spec.children()
    context = spec.context
    if (
        isinstance(context, (list, tuple))
        and len(context) == len(children)
        and all(isinstance(c, str) for c in context)
    ):
        keys = list(context)
    else:
        keys = [str(i) for i in range(len(children))]
    names: list[str] = []
    for key, child in zip(keys, children):
        names += _leaf_names(child, f"{prefix}.{key}" if prefix else key)
    return names
