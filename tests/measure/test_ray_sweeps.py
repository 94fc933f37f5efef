"""Sweeps on Ray (``--ray``, measure/sweeps/ray_runner.py) against a real local cluster: a head
and one worker node on this host, started by the module's fixture and stopped at its end.

- the skill sweep over a fixed subset gives, through the same report writer, the local runner's
  report: the same verdicts, every row stamped with its node;
- a Ray worker killed in the middle of a check loses no row: Ray runs the task again elsewhere;
- a bad address and a missing Ray are refused at once, with what to do."""

from __future__ import annotations

import functools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from skillmill.generator.cli import main

# Two that pass and two that fail at different stages (registry/support/torch.yaml): a verdict
# that moved would show.
TYPES = ("bert", "gpt2", "dinat", "pi0")
EXPECTED = {"bert": ("pass", None), "gpt2": ("pass", None),
            "dinat": ("fail", "load_skill"), "pi0": ("fail", "inputs")}  # fmt: skip
RAY = Path(sys.executable).with_name("ray")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalCluster:
    """A head plus one worker node on 127.0.0.1, one CPU each, started in the background (the
    first test runs the local sweep meanwhile); ``address`` waits for both.  ``stop`` ends every
    process of theirs: each `ray start` leads its own process group, which its daemons keep
    (`ray stop` would stop every Ray on the machine, other sessions' too)."""

    def __init__(self) -> None:
        self.temp = tempfile.mkdtemp(prefix="ray-sweeps-", dir="/tmp")  # short: Ray's socket paths
        self.port = _free_port()
        self.groups: list[int] = []
        self.failed = ""
        self.starting = threading.Thread(target=self._start, daemon=True)
        self.starting.start()

    @staticmethod
    def _node() -> list[str]:
        # every port its own: two nodes share this host, and other clusters may run beside them
        return ["--num-cpus", "1", "--node-ip-address", "127.0.0.1", "--disable-usage-stats",
                "--dashboard-agent-listen-port", str(_free_port()), "--metrics-export-port", str(_free_port())]  # fmt: skip

    def _start(self) -> None:
        head = [str(RAY), "start", "--head", "--port", str(self.port), "--temp-dir", self.temp,
                "--include-dashboard=false", "--dashboard-port", str(_free_port()),
                "--ray-client-server-port", str(_free_port()), *self._node()]  # fmt: skip
        worker = [str(RAY), "start", "--address", f"127.0.0.1:{self.port}", *self._node()]
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
        for command in (head, worker):
            proc = subprocess.Popen(command, env=env, start_new_session=True, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)  # fmt: skip
            self.groups.append(proc.pid)
            out, _ = proc.communicate(timeout=120)
            if proc.returncode != 0:
                self.failed = f"{' '.join(command[:3])} failed:\n{out[-2000:]}"
                return

    @property
    def address(self) -> str:
        self.starting.join(180)
        assert not self.starting.is_alive() and not self.failed, self.failed or "the cluster did not start"
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.starting.join(180)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for group in self.groups:
                try:
                    os.killpg(group, sig)
                except ProcessLookupError:
                    pass
            time.sleep(2)
        shutil.rmtree(self.temp, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster():
    pytest.importorskip("ray")  # in the test extra: SKILLMILL_STRICT_SKIPS=1 fails it instead
    started = LocalCluster()
    yield started
    started.stop()


@pytest.fixture
def report_dir(tmp_path, monkeypatch):
    """The support table and the docs rendered from it, in a copy: the sweeps write there."""
    from skillmill.generator import coverage
    from skillmill.registry import support

    table = tmp_path / "support"
    shutil.copytree(
        support.SUPPORT_DIR, table, ignore=shutil.ignore_patterns("*.py", "__pycache__")
    )
    (tmp_path / "docs").mkdir()
    monkeypatch.setattr(support, "SUPPORT_DIR", table)
    monkeypatch.setattr(coverage, "REPORT_MD", tmp_path / "docs" / "coverage.md")
    support.clear_cache()
    yield table
    support.clear_cache()


def _sweep(report_dir: Path, *extra: str) -> tuple[dict, str]:
    """`coverage --backend skill --types ...` with ``extra``: (its report, its output)."""
    args = ["coverage", "--backend", "skill", "-j", "2", *[a for t in TYPES for a in ("--types", t)], *extra]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return yaml.safe_load((report_dir / "torch.yaml").read_text(encoding="utf-8")), result.output


def _verdicts(rows: dict) -> dict:
    return {t: (rows[t]["status"], rows[t].get("stage")) for t in TYPES}


def test_ray_sweep_writes_the_local_runners_report(cluster, report_dir):
    committed = (report_dir / "torch.yaml").read_text(encoding="utf-8")
    local, _ = _sweep(report_dir)
    (report_dir / "torch.yaml").write_text(committed, encoding="utf-8")
    on_ray, output = _sweep(report_dir, "--ray", cluster.address)

    assert _verdicts(local["model_types"]) == EXPECTED
    assert _verdicts(on_ray["model_types"]) == EXPECTED
    hostname = socket.gethostname()
    for model_type in TYPES:
        stamp = on_ray["model_types"][model_type].pop("measured_on")
        assert re.fullmatch(
            rf"node {re.escape(hostname)} \([\d.]+\): .+, \d+ cores, torch \S+", stamp
        ), stamp
        assert "measured_on" not in local["model_types"][model_type]
        for document in (on_ray, local):  # every row records the seconds it took (issue 24)
            assert isinstance(document["model_types"][model_type].pop("seconds"), float)
    # past each row's node and time, the same document: same verdicts, reasons, counts, fields
    # and order
    assert on_ray == local
    # the bar's last word: both nodes, what each did, nothing left queued
    last = output.replace("\r", "\n").strip().splitlines()
    line = next(ln for ln in reversed(last) if "queued" in ln)
    done = [int(n) for n in re.findall(r"0 running, (\d+) done", line)]
    assert line.count("node ") == 2 and sum(done) == len(TYPES) and "queued 0" in line, line


def _hang_first(model_type: str, marks: str, victim: str) -> dict:
    """The skill sweep's check, except that the first attempt at ``victim`` names the Ray worker
    running it (this forked check's parent) and waits for it to be killed."""
    from skillmill.measure.sweeps.skill import check_skill

    attempts = Path(marks) / f"{model_type}.attempts"
    with attempts.open("a") as out:
        out.write(f"{os.getppid()}\n")
    if model_type == victim and len(attempts.read_text().split()) == 1:
        worker = os.getppid()
        tmp = Path(marks) / "victim.tmp"
        tmp.write_text(str(worker))
        tmp.rename(Path(marks) / "victim")
        while os.getppid() == worker:  # until the worker is gone; then this orphan leaves too
            time.sleep(0.05)
        os._exit(0)
    return check_skill(model_type)


@pytest.fixture(scope="module")
def runner(cluster):
    """One driver for the tests below: a Ray worker stays warm from one test to the next."""
    import ray

    from skillmill.measure.sweeps import ray_runner

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests/
    connected = ray_runner.connect(cluster.address)
    yield connected
    connected.close()


def test_a_ray_worker_killed_mid_sweep_loses_no_row(runner, tmp_path):
    from skillmill.measure.sweeps import BACKENDS

    victim, killed = "bert", []

    def kill_the_victim() -> None:
        mark = tmp_path / "victim"
        deadline = time.monotonic() + 120
        while not mark.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        if mark.exists():
            killed.append(int(mark.read_text()))
            os.kill(killed[0], signal.SIGKILL)

    killer = threading.Thread(target=kill_the_victim, daemon=True)
    killer.start()
    check = functools.partial(_hang_first, marks=str(tmp_path), victim=victim)
    rows = runner.run(list(TYPES), check, timeout=120, warm_up=BACKENDS["skill"].warm_up)
    killer.join(5)

    assert killed, "the victim's check never started"
    attempts = (tmp_path / f"{victim}.attempts").read_text().split()
    # run twice: first by the killed worker, then again by another one
    assert len(attempts) == 2 and attempts[0] == str(killed[0]) != attempts[1], attempts
    assert list(rows) == list(TYPES)
    assert _verdicts(rows) == EXPECTED  # the retried row is the check's, not a worker-died row
    assert all(row["measured_on"].startswith("node ") for row in rows.values())


def _check_chunk(types: list[str]) -> dict[str, dict]:
    from skillmill.measure.sweeps.skill import check_skill

    return {t: check_skill(t) for t in types}


def test_chunks_run_as_ray_tasks_with_the_max_sweeps_stamp(runner):
    """The MAX sweep's path (a task per chunk of types), with a cheap check in place of MAX's
    compile; its rows' stamp is one `coverage --backend max --merge` accepts."""
    from skillmill.measure.sweeps.max import measured_on

    chunks, landed = [["bert", "gpt2"], ["dinat", "pi0"]], []
    runner.run_chunks(chunks, _check_chunk, timeout=120, on_rows=lambda chunk, rows: landed.append((chunk, rows)),
                      stamp=functools.partial(measured_on, "cpu"))  # fmt: skip
    assert sorted(chunk for chunk, _ in landed) == sorted(chunks)
    rows = {t: r for _, got in landed for t, r in got.items()}
    assert _verdicts(rows) == EXPECTED
    assert all(
        re.fullmatch(r"node .+: .+, \d+ cores, MAX target cpu, torch \S+", r["measured_on"])
        for r in rows.values()
    )


def test_a_bad_address_is_refused_at_once(report_dir, monkeypatch):
    pytest.importorskip("ray")
    from skillmill.measure.sweeps import ray_runner

    monkeypatch.setattr(ray_runner, "CONNECT_TIMEOUT", 2.0)
    port = _free_port()  # nothing listens there
    started = time.monotonic()
    result = CliRunner().invoke(
        main, ["coverage", "--types", "bert", "--no-write", "--ray", f"127.0.0.1:{port}"]
    )
    assert result.exit_code == 1
    assert (
        f"no Ray cluster answers at 127.0.0.1:{port}" in result.output
        and "ray start --head" in result.output
    )
    # a port that answers, but not as a Ray head (ray.init alone waits minutes on one)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        address = f"127.0.0.1:{server.getsockname()[1]}"
        result = CliRunner().invoke(main, ["task-coverage", "--no-write", "--ray", address])
    assert (
        result.exit_code == 1 and f"no Ray cluster answers at {address}" in result.output
    ), result.output
    assert time.monotonic() - started < 30
    result = CliRunner().invoke(
        main, ["coverage", "--types", "bert", "--no-write", "--ray", "head-without-port"]
    )
    assert result.exit_code == 1 and "expected auto or HOST:PORT" in result.output


def test_without_ray_installed_the_refusal_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    result = CliRunner().invoke(main, ["task-coverage", "--no-write", "--ray", "auto"])
    assert result.exit_code == 1
    assert "pip install 'skillmill[ray]'" in result.output, result.output


def test_every_sweep_takes_the_one_ray_option_and_imports_ray_only_with_it():
    from skillmill.generator.commands import coverage, ray_option
    from skillmill.generator.tasks_command import task_coverage

    def option(command):
        return next(p for p in command.params if p.name == "ray_address")

    assert option(coverage).help == option(task_coverage).help and ray_option is not None
    code = ("import sys; from skillmill.generator.cli import main; from skillmill.measure.sweeps import max, tasks; "
            "from skillmill.generator import commands; commands.sweep_runner(None); assert 'ray' not in sys.modules")  # fmt: skip
    subprocess.run([sys.executable, "-c", code], check=True)


def test_progress_line_counts_per_node():
    from skillmill.measure.sweeps.ray_runner import progress_line

    labels = {"n1": "10.0.0.1", "n2": "10.0.0.2"}
    line = progress_line(
        labels, running={"0": "n1", "1": "n1", "4": "n2"}, done={"n1": 5}, queued=10
    )
    assert line == "node 10.0.0.1: 2 running, 5 done; node 10.0.0.2: 1 running, 0 done; queued 10"
