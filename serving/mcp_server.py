"""The MCP server (official ``mcp`` SDK, ``MCPServer``): skillmill's tools for agents.

Arguments are typed and range-checked by the SDK from the signatures below; the work lives in
``tools.py``.  Every failure comes back as a tool error (``is_error=True``) with a message — an
anticipated one in the tool's words, anything else with its type and text — so no call can take
the server down."""

from __future__ import annotations

import functools
import logging
from typing import Annotated, Any, Callable, Literal

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from . import tools

log = logging.getLogger("skillmill.mcp")

UseCase = Literal["low-latency", "throughput", "memory"]
Modality = Literal["text", "vision", "audio", "video", "multimodal", "time-series", "other"]
ClassName = Annotated[
    str, Field(min_length=1, max_length=200, description="transformers class name, e.g. BertModel")
]
ModelSource = Annotated[
    str,
    Field(
        min_length=1,
        max_length=4096,
        description="local checkpoint folder, or 'tiny' for the tiny "
        "random model built from the registry's config",
    ),
]

INSTRUCTIONS = (
    "skillmill turns transformers model classes into runnable skills. list_models searches the "
    "registry; detect_hardware says where a model can run; benchmark_hardware_targets measures "
    "it on every engine here and remembers the figures; get_hardware_recommendations answers "
    "from those measurements (and says when there are none); run_inference runs it; "
    "generate_skill renders a "
    "skill module into a folder you name; compile_to_max / compile_to_mojo compile it for "
    "Modular's backends where this build has them."
)


def _as_tool_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except tools.ToolFailure as exc:
            raise ToolError(str(exc)) from exc
        except Exception as exc:  # still a tool error: the server and the session go on
            log.exception("tool %s failed", fn.__name__)
            raise ToolError(f"{fn.__name__} failed: {type(exc).__name__}: {exc}") from exc

    return wrapper


def build_server() -> MCPServer:
    server = MCPServer(name="skillmill", instructions=INSTRUCTIONS)

    @server.tool()
    @_as_tool_errors
    def list_models(
        modality: Modality | None = None,
        task: str | None = None,
        family: str | None = None,
        model_type: str | None = None,
        limit: Annotated[int, Field(ge=1, le=5000)] = 100,
    ) -> dict[str, Any]:
        """Registered transformers model classes, filtered by modality, task (e.g.
        text-generation), family (encoder, decoder, ...) or model type (e.g. bert)."""
        return tools.list_models(modality, task, family, model_type, limit)

    @server.tool()
    @_as_tool_errors
    def detect_hardware() -> dict[str, Any]:
        """Every hardware target's probe result (present or why not), the CPU's SIMD features
        and the native kernel library's status."""
        return tools.detect_hardware()

    @server.tool()
    @_as_tool_errors
    def generate_skill(
        model_type: Annotated[str, Field(min_length=1, max_length=200)],
        output_dir: Annotated[str, Field(min_length=1, max_length=4096)],
        hardware: list[str] | None = None,
    ) -> dict[str, Any]:
        """Render the skill module for one model type (e.g. bert) into output_dir, optionally
        for only some hardware targets (cpu is always kept)."""
        return tools.generate_skill(model_type, output_dir, hardware)

    @server.tool()
    @_as_tool_errors
    def run_inference(
        class_name: ClassName,
        inputs: Annotated[list[str], Field(min_length=1, max_length=64)],
        model: ModelSource = "tiny",
        device: str = "auto",
    ) -> dict[str, Any]:
        """Run a text skill on strings: backend used, latency, fallback reason, output shapes,
        and embeddings / next-token top-k / class probabilities where the model gives them."""
        return tools.run_inference(class_name, inputs, model, device)

    @server.tool()
    @_as_tool_errors
    def compile_to_max(
        class_name: ClassName, model: ModelSource = "tiny", target_device: str = "auto"
    ) -> dict[str, Any]:
        """Compile the model to a Modular MAX graph (skillmill.compile_to_max)."""
        return tools.compile_to_max(class_name, model, target_device)

    @server.tool()
    @_as_tool_errors
    def compile_to_mojo(
        class_name: ClassName,
        model: ModelSource = "tiny",
        optimization_level: Annotated[int, Field(ge=0, le=3)] = 3,
    ) -> dict[str, Any]:
        """Compile the model's fused ops to Mojo kernels (skillmill.compile_to_mojo)."""
        return tools.compile_to_mojo(class_name, model, optimization_level)

    @server.tool()
    @_as_tool_errors
    def benchmark_hardware_targets(
        class_name: ClassName,
        model: ModelSource = "tiny",
        batch_size: Annotated[int, Field(ge=1, le=256)] = 1,
        seq_len: Annotated[int, Field(ge=1, le=4096)] = 16,
        repeats: Annotated[int, Field(ge=1, le=100)] = 5,
        engines: list[str] | None = None,
    ) -> dict[str, Any]:
        """Measure the skill on each engine present (native, torch, openvino, onnxruntime, the
        GPUs; or the engines named, max and mojo included): median and p95 latency, first call,
        parity against PyTorch eager float32, the reason for each that cannot run.  The figures
        are remembered for device='auto' and get_hardware_recommendations."""
        return tools.benchmark_hardware_targets(
            class_name, model, batch_size, seq_len, repeats, engines
        )

    @server.tool()
    @_as_tool_errors
    def get_hardware_recommendations(
        model_id: ClassName,
        use_case: UseCase = "low-latency",
        model: ModelSource = "tiny",
    ) -> dict[str, Any]:
        """The engine to use for this model class and weights on this machine for a use case
        (low-latency, throughput, memory), from measurements; says plainly when there are none
        (then it is the fixed priority order's first present target)."""
        return tools.get_hardware_recommendations(model_id, use_case, model)

    return server
