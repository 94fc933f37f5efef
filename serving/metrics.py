"""Prometheus text exposition (format 0.0.4) for the server: requests by endpoint and status,
a request latency histogram, a batch size histogram, token counters and the backend in use;
and, beside them, text-embeddings-inference's own series under its names (``te_*``, see
``TEI_SERIES``), so a dashboard built for TEI reads this server unchanged.

Written here rather than pulled in from prometheus_client: a few counters and two histograms,
with labels limited to route templates so a fuzzer's random paths cannot grow the series."""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections import defaultdict
from typing import Any, Iterable

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
POWERS_OF_TWO = tuple(2**i for i in range(21))  # TEI's buckets for sizes and token counts

# TEI's metric names (router/src and core/src of text-embeddings-inference): counters carry no
# _total suffix there, and neither do they here.  name -> (type, help, histogram buckets)
TEI_SERIES: dict[str, tuple[str, str, tuple]] = {
    "te_request_count": ("counter", "Requests received, by method (single|batch).", ()),
    "te_request_success": ("counter", "Requests answered, by method.", ()),
    "te_request_failure": ("counter", "Requests refused or failed, by reason (err).", ()),
    "te_embed_count": ("counter", "Inputs sent to be embedded.", ()),
    "te_embed_success": ("counter", "Inputs embedded.", ()),
    "te_predict_count": ("counter", "Inputs (or pairs) sent to be classified.", ()),
    "te_predict_success": ("counter", "Inputs (or pairs) classified.", ()),
    "te_request_duration": ("histogram", "Seconds per request.", LATENCY_BUCKETS),
    "te_request_tokenization_duration": ("histogram", "Seconds tokenizing.", LATENCY_BUCKETS),
    "te_request_queue_duration": ("histogram", "Seconds waiting for the model.", LATENCY_BUCKETS),
    "te_request_inference_duration": ("histogram", "Seconds in the model call.", LATENCY_BUCKETS),
    "te_request_input_length": ("histogram", "Tokens per input.", POWERS_OF_TWO),
    "te_batch_next_size": ("histogram", "Requests per model batch.", POWERS_OF_TWO[:13]),
    "te_batch_next_tokens": ("histogram", "Tokens per model batch.", POWERS_OF_TWO),
    "te_queue_size": ("gauge", "Requests waiting for the model.", ()),
}


class Histogram:
    def __init__(self, buckets: Iterable[float]):
        self.buckets = tuple(buckets)
        self.counts = [0] * (len(self.buckets) + 1)  # the last slot is +Inf
        self.total = 0.0
        self.n = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.buckets, value)] += 1
        self.total += value
        self.n += 1

    def lines(self, name: str, labels: dict[str, str]) -> list[str]:
        out, running = [], 0
        for bound, count in zip([*map(_number, self.buckets), "+Inf"], self.counts):
            running += count
            out.append(f"{name}_bucket{_labels({**labels, 'le': bound})} {running}")
        out.append(f"{name}_sum{_labels(labels)} {self.total:.6f}")
        out.append(f"{name}_count{_labels(labels)} {self.n}")
        return out


class Metrics:
    def __init__(self):
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.latency: dict[str, Histogram] = {}
        self.batches: dict[str, Histogram] = {}
        self.tokens: dict[str, int] = defaultdict(int)
        self.in_flight = 0
        self.tei_counts: dict[tuple[str, tuple], int] = defaultdict(int)
        self.tei_histograms: dict[str, Histogram] = {}

    def started(self) -> None:
        with self._lock:
            self.in_flight += 1

    def finished(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.in_flight -= 1
            self.requests[(method, route, status)] += 1
            self.latency.setdefault(route, Histogram(LATENCY_BUCKETS)).observe(seconds)

    def batch(self, kind: str, size: int) -> None:
        with self._lock:
            self.batches.setdefault(kind, Histogram(BATCH_BUCKETS)).observe(size)

    def count_tokens(self, kind: str, n: int) -> None:
        with self._lock:
            self.tokens[kind] += n

    def tei_count(self, name: str, n: int = 1, **labels: str) -> None:
        with self._lock:
            self.tei_counts[(name, tuple(sorted(labels.items())))] += n

    def tei_observe(self, name: str, value: float) -> None:
        with self._lock:
            self.tei_histograms.setdefault(name, Histogram(TEI_SERIES[name][2])).observe(value)

    def render(self, info: dict[str, Any] | list[dict[str, Any]], queue_size: int = 0) -> str:
        """The exposition text; ``info`` labels the skillmill_backend_info series (one sample
        per served skill)."""
        infos = [info] if isinstance(info, dict) else list(info)
        with self._lock:
            lines = [
                "# HELP skillmill_requests_total HTTP requests by method, route and status.",
                "# TYPE skillmill_requests_total counter",
            ]
            for (method, route, status), n in sorted(self.requests.items()):
                labels = {"method": method, "route": route, "status": str(status)}
                lines.append(f"skillmill_requests_total{_labels(labels)} {n}")
            lines += [
                "# HELP skillmill_request_latency_seconds Request latency by route.",
                "# TYPE skillmill_request_latency_seconds histogram",
            ]
            for route, hist in sorted(self.latency.items()):
                lines += hist.lines("skillmill_request_latency_seconds", {"route": route})
            lines += [
                "# HELP skillmill_batch_size Rows per model call, by kind.",
                "# TYPE skillmill_batch_size histogram",
            ]
            for kind, hist in sorted(self.batches.items()):
                lines += hist.lines("skillmill_batch_size", {"kind": kind})
            lines += [
                "# HELP skillmill_tokens_total Tokens processed, by kind.",
                "# TYPE skillmill_tokens_total counter",
            ]
            for kind, n in sorted(self.tokens.items()):
                lines.append(f"skillmill_tokens_total{_labels({'kind': kind})} {n}")
            lines += [
                "# HELP skillmill_requests_in_flight Requests being served now.",
                "# TYPE skillmill_requests_in_flight gauge",
                f"skillmill_requests_in_flight {self.in_flight}",
                "# HELP skillmill_backend_info The model served and where it runs (value 1).",
                "# TYPE skillmill_backend_info gauge",
            ]
            lines += [
                f"skillmill_backend_info{_labels({k: str(v) for k, v in one.items()})} 1"
                for one in infos
            ]
            lines += self._tei_lines(queue_size)
        return "\n".join(lines) + "\n"

    def _tei_lines(self, queue_size: int) -> list[str]:
        lines = []
        for name, (kind, text, _) in TEI_SERIES.items():
            lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
            if kind == "gauge":
                lines.append(f"{name} {queue_size}")
            elif kind == "histogram":
                if name in self.tei_histograms:
                    lines += self.tei_histograms[name].lines(name, {})
            else:
                series = sorted((k[1], n) for k, n in self.tei_counts.items() if k[0] == name)
                for labels, n in series or [((), 0)]:
                    lines.append(f"{name}{_labels(dict(labels)) if labels else ''} {n}")
        return lines


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"
