"""The MCP server through a real MCP client session over stdio (a `generate-skills mcp`
subprocess), calling every tool, plus failures that come back as tool errors while the session
goes on."""

import asyncio
import hashlib
import importlib.metadata
import json
import os
import sys
from pathlib import Path

import pytest

TOOLS = {
    "list_models",
    "detect_hardware",
    "generate_skill",
    "run_inference",
    "compile_to_max",
    "compile_to_mojo",
    "benchmark_hardware_targets",
    "get_hardware_recommendations",
}


def _tree_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


async def _session_calls(calls, table: Path):
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    # benchmark_hardware_targets writes the decision table: a fresh one, never the user's
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "SKILLMILL_DECISIONS": str(table)}
    if os.environ.get("MODULAR_CACHE_DIR"):  # the compile tools use the tests' compile cache
        env["MODULAR_CACHE_DIR"] = os.environ["MODULAR_CACHE_DIR"]
    params = StdioServerParameters(
        command=sys.executable,
        args=["-c", "from skillmill.generator.cli import main; main()", "mcp"],
        env=env,
    )
    results = {}
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            listed = await session.list_tools()
            results["__tools__"] = {tool.name: tool.input_schema for tool in listed.tools}
            for key, name, arguments in calls:
                result = await session.call_tool(name, arguments)
                text = result.content[0].text if result.content else ""
                results[key] = (result.is_error, text)
    return results


@pytest.fixture(scope="module")
def mcp_results(tmp_path_factory):
    from skillmill.generator.cli import DEFAULT_OUTPUT

    out = tmp_path_factory.mktemp("skills")
    before = _tree_digest(DEFAULT_OUTPUT)
    calls = [
        ("list", "list_models", {"model_type": "bert", "limit": 3}),
        ("hardware", "detect_hardware", {}),
        (
            "generate",
            "generate_skill",
            {"model_type": "bert", "output_dir": str(out), "hardware": ["cpu", "cuda"]},
        ),
        (
            "generate_committed",
            "generate_skill",
            {"model_type": "bert", "output_dir": str(DEFAULT_OUTPUT)},
        ),
        (
            "infer",
            "run_inference",
            {"class_name": "BertModel", "inputs": ["hello", "world"], "device": "cpu"},
        ),
        (
            "infer_lm",
            "run_inference",
            {"class_name": "GPT2LMHeadModel", "inputs": ["hi"], "device": "cpu"},
        ),
        ("max", "compile_to_max", {"class_name": "BertModel", "target_device": "cpu"}),
        ("mojo", "compile_to_mojo", {"class_name": "BertModel", "optimization_level": 2}),
        (
            "bench",
            "benchmark_hardware_targets",
            {"class_name": "BertModel", "engines": ["torch", "cuda"], "repeats": 3},
        ),
        ("recommend", "get_hardware_recommendations", {"model_id": "GPT2LMHeadModel"}),
        ("unknown_class", "run_inference", {"class_name": "NoSuchModel", "inputs": ["x"]}),
        ("bad_type", "run_inference", {"class_name": "BertModel", "inputs": "not a list"}),
        ("bad_range", "compile_to_mojo", {"class_name": "BertModel", "optimization_level": 9}),
        ("unknown_type", "generate_skill", {"model_type": "bertt", "output_dir": str(out)}),
        ("after_errors", "list_models", {"task": "text-generation", "limit": 1}),
    ]
    table = tmp_path_factory.mktemp("decisions") / "decisions.json"
    results = asyncio.run(asyncio.wait_for(_session_calls(calls, table), timeout=900))
    results["__committed_untouched__"] = before == _tree_digest(DEFAULT_OUTPUT)
    results["__out__"] = out
    return results


def ok(results, key):
    is_error, text = results[key]
    assert not is_error, text
    return json.loads(text)


def failed(results, key):
    is_error, text = results[key]
    assert is_error, text
    return text


def test_every_tool_is_listed_with_typed_arguments(mcp_results):
    tools = mcp_results["__tools__"]
    assert set(tools) == TOOLS
    run = tools["run_inference"]
    assert run["properties"]["inputs"]["type"] == "array"
    assert set(run["required"]) == {"class_name", "inputs"}
    level = tools["compile_to_mojo"]["properties"]["optimization_level"]
    assert (level["minimum"], level["maximum"]) == (0, 3)


def test_registry_and_hardware_tools(mcp_results):
    listed = ok(mcp_results, "list")
    assert listed["matched"] >= 3 and listed["returned"] == 3
    assert all(c["model_type"] == "bert" for c in listed["classes"])
    hardware = ok(mcp_results, "hardware")
    cpu = [t for t in hardware["targets"] if t["name"] == "cpu"]
    assert cpu and cpu[0]["available"] and "cpu_features" in hardware
    recommend = ok(mcp_results, "recommend")
    assert "cpu" in recommend["present_and_supported"]
    # nothing measured for GPT-2: the fixed order's first present target, and it says so
    assert recommend["measured"] is False and "not a measured choice" in recommend["note"]
    first = [t for t in recommend["auto_order"] if t in recommend["present_and_supported"]]
    assert recommend["recommended"] == (first[0] if first else "cpu")


def test_generate_skill_writes_only_where_asked(mcp_results):
    generated = ok(mcp_results, "generate")
    module = mcp_results["__out__"] / "bert.py"
    assert generated["files"] == [str(module)] and module.exists()
    assert "class BertModelSkill" in module.read_text()
    assert set(generated["hardware"]) == {"cpu", "cuda"}
    assert "committed generated/" in failed(mcp_results, "generate_committed")
    assert mcp_results["__committed_untouched__"]
    assert "did you mean" in failed(mcp_results, "unknown_type")


def test_run_inference_and_benchmark_run_for_real(mcp_results):
    import numpy as np

    from skillmill import load_skill

    infer = ok(mcp_results, "infer")
    assert infer["backend"] == "cpu" and infer["fallback_reason"] is None
    own = load_skill("BertModel", model="tiny", device="cpu").process(["hello", "world"])
    assert infer["engine"] == own.engine
    np.testing.assert_allclose(np.array(infer["embeddings"]), own.embeddings, atol=1e-5)
    lm = ok(mcp_results, "infer_lm")
    own_lm = load_skill("GPT2LMHeadModel", model="tiny", device="cpu").process(["hi"])
    top = own_lm.postprocessed["next_token_top_k"]["token_ids"].tolist()
    assert lm["next_token_top_k"]["token_ids"] == top and len(top[0]) == 5
    bench = ok(mcp_results, "bench")
    rows = {r["engine"]: r for r in bench["results"]}
    assert rows["torch"]["ran"] and rows["torch"]["median_ms"] > 0
    assert not rows["cuda"]["ran"] and rows["cuda"]["reason"]
    assert bench["fastest"] == "torch" and bench["auto_choice"] == "torch"
    assert bench["recorded_in"].endswith("decisions.json") and bench["machine"].startswith("machine:")


def test_compile_to_max_compiles_for_real(mcp_results):
    # max is a declared test dependency: without it this skips (a failure under CI's
    # SKILLMILL_STRICT_SKIPS=1), never passes.
    pytest.importorskip("max", reason="MAX (max==26.7.0) is not installed")
    result = ok(mcp_results, "max")  # a tool error fails here, with its message
    assert result["success"] is True, result["error_message"]
    assert result["error_message"] is None
    path = Path(result["compiled_path"])
    assert path.suffix == ".mef" and path.is_file() and path.stat().st_size > 0
    assert result["optimizations_applied"][-2:] == ["lower_to_max_graph", "max_graph_compiler"]
    meta = result["metadata"]
    assert meta["target"] == "cpu"  # what MAX compiled for, as asked
    assert meta["max_version"] == importlib.metadata.version("max")
    assert meta["graph"] == "BertModel" and meta["nodes"] > 0
    assert {"last_hidden_state", "pooler_output"} <= set(meta["outputs"])


def test_compile_to_mojo_builds_for_real(mcp_results):
    pytest.importorskip("max", reason="MAX (max==26.7.0, which brings mojo) is not installed")
    from skillmill.engines.modular.mojo_build import mojo_executable

    assert mojo_executable() is not None, "max is installed but its mojo compiler is not"
    result = ok(mcp_results, "mojo")
    assert result["success"] is True, result["error_message"]
    assert result["error_message"] is None
    path = Path(result["compiled_path"])
    assert path.suffix == ".so" and path.is_file() and path.stat().st_size > 0
    assert result["optimizations_applied"][-1] == "mojo build -O2"  # the level asked for
    assert any(o.startswith("mojo_kernels:") for o in result["optimizations_applied"])
    assert result["metadata"]["optimization_level"] == 2
    assert result["metadata"]["graph"] == "BertModel" and result["metadata"]["kernels"]


def test_bad_calls_are_tool_errors_and_the_session_goes_on(mcp_results):
    assert "NoSuchModel" in failed(mcp_results, "unknown_class")
    assert "inputs" in failed(mcp_results, "bad_type")
    assert "optimization_level" in failed(mcp_results, "bad_range")
    assert ok(mcp_results, "after_errors")["returned"] == 1


def test_streamable_http_transport():
    import socket
    import subprocess
    import time

    from mcp import Client

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from skillmill.generator.cli import main; main()",
            "mcp",
            "--http",
            str(port),
        ],
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert (
                    server.poll() is None and time.monotonic() < deadline
                ), "mcp --http did not start"
                time.sleep(0.2)

        async def talk():
            async with Client(f"http://127.0.0.1:{port}/mcp") as client:
                names = {tool.name for tool in (await client.list_tools()).tools}
                result = await client.call_tool("list_models", {"model_type": "gpt2", "limit": 2})
                return names, result

        names, result = asyncio.run(asyncio.wait_for(talk(), timeout=120))
        assert names == TOOLS
        assert not result.is_error and json.loads(result.content[0].text)["returned"] == 2
    finally:
        server.terminate()
        server.wait(timeout=30)
