"""`bench serve-ray`'s arithmetic (no Ray): each ingress's overhead is taken against the plain
runs of its own block, so a busy minute in one block does not leak into the other's figure."""

import pytest

from skillmill.measure.bench.serve_ray import _verdict, format_ray_report, run_ray_comparison


def _run(ingress, label, replicas, clients, p50, p95=None, rps=100.0, cpu=1.0, **extra):
    return {"ingress": ingress, "label": label, "replicas": replicas, "clients": clients,
            "ok": 10, "errors": 0, "retried": 0, "throughput_rps": rps, "p50_ms": p50,
            "p95_ms": p95 if p95 is not None else p50 + 1, "p99_ms": p50 + 2,
            "server_cpu_ms_per_request": cpu, "loadavg": 1.0, "stopped_by_time_limit": False,
            "error_samples": [], **extra}  # fmt: skip


MACHINE = {"cpu": "a CPU", "cores": 2, "simd": ["avx2"], "isa": "avx2", "threads": 1,
           "peak": {"per_core_gflops": 100.0, "peak_gflops": 100.0}}  # fmt: skip
RUNS = [
    # haproxy block: a quiet machine
    _run("haproxy", "plain server", 1, 1, 10.0),
    _run("haproxy", "ray serve (haproxy)", 1, 1, 10.5),
    _run("haproxy", "plain server", 1, 32, 30.0, rps=900),
    _run("haproxy", "ray serve (haproxy)", 1, 32, 40.0, rps=600),
    _run("haproxy", "ray serve (haproxy)", 2, 32, 35.0, rps=660),
    _run("haproxy", "ray serve (haproxy), 1 killed", 2, 32, 36.0, killed=["r1"], retried=3),
    # proxy block: the plain server itself is slower here (a busy minute)
    _run("proxy", "plain server", 1, 1, 20.0),
    _run("proxy", "ray serve (proxy)", 1, 1, 34.0),
    _run("proxy", "plain server", 1, 32, 50.0, rps=500),
    _run("proxy", "ray serve (proxy)", 1, 32, 250.0, rps=100),
]


def test_each_ingress_is_compared_with_the_plain_runs_of_its_own_block():
    haproxy = _verdict(RUNS, "haproxy", 32)
    assert haproxy["serve_overhead"]["p50_1_clients_ms"] == pytest.approx(0.5)
    assert haproxy["serve_overhead"]["p50_32_clients_ms"] == pytest.approx(10.0)
    assert haproxy["goal_met"] is True
    assert haproxy["throughput_vs_plain"] == pytest.approx(0.67)
    assert haproxy["throughput_2_vs_1_replicas"] == pytest.approx(1.1)
    assert haproxy["killed"] == [{"replica": "r1", "failed": 0, "retried": 3}]
    proxy = _verdict(RUNS, "proxy", 32)
    assert proxy["serve_overhead"]["p50_1_clients_ms"] == pytest.approx(14.0)  # not 34 - 15
    assert proxy["goal_met"] is False and proxy["throughput_2_vs_1_replicas"] is None


def test_the_report_names_each_ingress_and_its_verdict():
    report = {
        "machine": MACHINE, "skill": "BertModel", "model": "tiny", "clients": 32, "rounds": 1,
        "batch_size": 32, "runs": RUNS, "serve_env": {}, "goal_p50_1_client_ms": 1.5,
        "ingress_env": {"haproxy": {"RAY_SERVE_ENABLE_HA_PROXY": "1"}, "proxy": {}},
        "ingresses": {i: _verdict(RUNS, i, 32) for i in ("haproxy", "proxy")},
    }  # fmt: skip
    text = format_ray_report(report).splitlines()[1:]  # past the machine line
    assert "ingress haproxy: cluster started with RAY_SERVE_ENABLE_HA_PROXY=1" in text
    assert "ingress proxy: cluster started with Serve's defaults" in text
    met = [line for line in text if "1 client p50 0.5 ms" in line]
    assert len(met) == 1 and "met)" in met[0] and "not met" not in met[0]
    assert any("1 client p50 14.0 ms" in line and "not met" in line for line in text)


def test_an_unknown_ingress_is_refused_before_anything_starts():
    with pytest.raises(ValueError, match="ingress must be among"):
        run_ray_comparison(ingresses=("nginx",))
