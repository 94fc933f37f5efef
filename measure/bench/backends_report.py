"""What `bench backends` writes from its results (``backends.py``): the terminal table, the JSON
file, PNG plots (matplotlib) and one self-contained HTML page (the plots embedded as base64 data
URIs, no file or network fetched).  Every output starts with the machine line: the CPU, its
SIMD, the native kernels' ISA and the FMA peak measured in the same run.

An engine that fell back (or was absent, or failed) at a shape has no point in any plot there;
its legend entry and the page's table say so, with the reason."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from .backends import FELL_BACK, MEASURED

# The plots, in the order the page shows them: file stem -> title.
PLOTS = {
    "latency_vs_seq": "Latency against sequence length, per engine (one panel per batch size)",
    "latency_vs_batch": "Latency against batch size, per engine (one panel per sequence length)",
    "peak_memory": "Peak resident memory per engine and shape",
    "first_call": "First call (conversion, compile, parity check) per engine and shape",
    "error": "Largest relative error against PyTorch eager float32",
}


def _shape(label: str) -> tuple[int, int]:
    batch, seq = label.split("x")
    return int(batch), int(seq)


def _mb(value: Any) -> float | None:
    return value / 2**20 if isinstance(value, (int, float)) else None


def _num(value: Any, spec: str, width: int) -> str:
    return f"{value:>{width}{spec}}" if isinstance(value, (int, float)) else f"{'-':>{width}}"


def _status_word(cell: dict[str, Any]) -> str:
    if cell["status"] != MEASURED:
        return cell["status"]
    if cell.get("reference"):
        return "reference"
    return "pass" if cell.get("parity_passed") else "PARITY FAIL"


def _load(results: dict[str, Any], when: str) -> str:
    load = results.get(f"load_{when}")
    return ", ".join(f"{v:.2f}" for v in load) if load else "n/a"


# ---- the terminal table -----------------------------------------------------------------------
def format_table(results: dict[str, Any]) -> str:
    """The machine line, then one row per (shape, engine) and every engine's reason for the
    shapes it did not run as itself."""
    lines = [results["machine"]["line"],
             f"{results['model_class']} ({results['model']}), {results['precision']}: "
             f"{results['rounds']} alternating rounds, one process per engine each, "
             f"{results['repeats']} timed calls per round after {results['warm_up']} warm-up, "
             f"{results['threads']} thread{'s' if results['threads'] != 1 else ''}; load average before {_load(results, 'before')}, "
             f"after {_load(results, 'after')}", ""]  # fmt: skip
    header = (f"{'shape':<9}{'engine':<13}{'median ms':>10}{'p95 ms':>10}{'items/s':>10}"
              f"{'first call s':>13}{'peak MB':>9}{'error':>10}  status")  # fmt: skip
    lines += [header, "-" * len(header)]
    for label in results["shapes"]:
        for name, engine in results["engines"].items():
            cell = engine["shapes"][label]
            error = cell.get("max_relative_error")
            mark = " *" if results["fastest"].get(label) == name else ""
            lines.append(f"{label:<9}{name:<13}{_num(cell.get('median_ms'), '.3f', 10)}"
                         f"{_num(cell.get('p95_ms'), '.3f', 10)}{_num(cell.get('throughput'), '.1f', 10)}"
                         f"{_num(cell.get('first_call_s'), '.2f', 13)}"
                         f"{_num(_mb(cell.get('peak_rss_bytes')), '.0f', 9)}"
                         f"{_num(error, '.1e', 10)}  {_status_word(cell)}{mark}")  # fmt: skip
    lines.append("")
    lines.append("* fastest engine at that shape whose parity passed; peak MB: the process's peak "
                 "resident memory from the shape's first call on (its own process); error: "
                 "largest relative error against PyTorch eager float32")  # fmt: skip
    for name, engine in results["engines"].items():
        seen = set()
        for label, cell in engine["shapes"].items():
            if cell["status"] != MEASURED and cell["reason"] not in seen:
                seen.add(cell["reason"])
                lines.append(f"{name} {cell['status']} at {label}: {cell['reason']}")
    return "\n".join(lines)


# ---- the plots ----------------------------------------------------------------------------------
def _label(name: str, engine: dict[str, Any]) -> str:
    return name if engine["status"] == MEASURED else f"{name} ({engine['status']})"


def _colour(results: dict[str, Any], name: str) -> str:
    """One colour per engine, the same in every plot."""
    return f"C{list(results['engines']).index(name) % 10}"


def _footnote(results: dict[str, Any]) -> str:
    missing = [f"{name}: {engine['status']}" for name, engine in results["engines"].items()
               if engine["status"] != MEASURED]  # fmt: skip
    return ("not plotted where not measured: " + "; ".join(missing)) if missing else ""


def _figure(results: dict[str, Any], panels: int = 1):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels + 1.5, 4.2), squeeze=False)
    fig.text(0.01, 0.005, results["machine"]["line"][:170], fontsize=6, color="#555")
    note = _footnote(results)
    if note:
        fig.text(0.01, 0.035, note[:170], fontsize=6, color="#a33")
    return fig, list(axes[0])


def _latency_lines(results: dict[str, Any], stem: str, path: Path) -> None:
    """Median latency against one shape axis, a panel per value of the other."""
    shapes = [_shape(s) for s in results["shapes"]]
    by_seq = stem == "latency_vs_seq"
    groups = sorted({b if by_seq else s for b, s in shapes})
    fig, axes = _figure(results, len(groups))
    for ax, group in zip(axes, groups):
        for name, engine in results["engines"].items():
            points = []
            for label, cell in engine["shapes"].items():
                batch, seq = _shape(label)
                if (batch if by_seq else seq) == group and "median_ms" in cell:
                    points.append((seq if by_seq else batch, cell["median_ms"]))
            points.sort()
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o",
                    color=_colour(results, name), label=_label(name, engine))  # fmt: skip
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length" if by_seq else "batch size")
        ax.set_ylabel("median latency, ms")
        ax.set_title(f"batch {group}" if by_seq else f"sequence {group}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle(PLOTS[stem], fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 0.95))
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)


def _bars(results: dict[str, Any], stem: str, path: Path, value, ylabel: str,
          log: bool = False, line: float | None = None) -> None:  # fmt: skip
    """Grouped bars: one group per shape, one bar per engine (none where not measured)."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    fig, [ax] = _figure(results)
    names = list(results["engines"])
    handles: list[Any] = []
    width = 0.8 / max(len(names), 1)
    for index, name in enumerate(names):
        engine = results["engines"][name]
        xs, ys = [], []
        for position, label in enumerate(results["shapes"]):
            y = value(engine["shapes"][label])
            if y is not None:
                xs.append(position + (index - (len(names) - 1) / 2) * width)
                ys.append(y)
        label = _label(name, engine)
        if stem == "error" and engine["status"] == MEASURED and all(
                c.get("reference") for c in engine["shapes"].values()):  # fmt: skip
            label = f"{name} (the reference: no error)"
        if ys:
            handles.append(ax.bar(xs, ys, width, color=_colour(results, name), label=label))
        else:  # nothing to draw: still named in the legend, with why
            handles.append(Patch(facecolor=_colour(results, name), alpha=0.25, label=label))
    ax.set_xticks(range(len(results["shapes"])), results["shapes"])
    ax.set_xlabel("batch x sequence")
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    if line is not None:
        handles.append(ax.axhline(line, color="#a33", linestyle="--", linewidth=1,
                                  label="float32 tolerance"))  # fmt: skip
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(PLOTS[stem], fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _measured(key: str, scale=lambda v: v):
    def value(cell: dict[str, Any]) -> float | None:
        v = cell.get(key) if cell["status"] == MEASURED else None
        return scale(v) if isinstance(v, (int, float)) else None

    return value


def _error(cell: dict[str, Any]) -> float | None:
    if cell["status"] != MEASURED or cell.get("reference"):
        return None  # the reference itself has no error to plot on a log axis
    error = cell.get("max_relative_error")
    return max(float(error), 1e-12) if isinstance(error, (int, float)) else None


def write_plots(results: dict[str, Any], folder: Path) -> dict[str, Path]:
    """Every plot in ``PLOTS`` as ``folder/<stem>.png``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {stem: folder / f"{stem}.png" for stem in PLOTS}
    for stem in ("latency_vs_seq", "latency_vs_batch"):
        _latency_lines(results, stem, paths[stem])
    _bars(results, "peak_memory", paths["peak_memory"], _measured("peak_rss_bytes", _mb),
          "peak resident memory, MB")  # fmt: skip
    _bars(results, "first_call", paths["first_call"], _measured("first_call_s"),
          "first call, s", log=True)  # fmt: skip
    tolerances = [c.get("tolerance") for e in results["engines"].values()
                  for c in e["shapes"].values() if isinstance(c.get("tolerance"), float)]  # fmt: skip
    _bars(results, "error", paths["error"], _error, "max relative error vs float32", log=True,
          line=min(tolerances) if tolerances else None)  # fmt: skip
    return paths


# ---- the page ---------------------------------------------------------------------------------
STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px}
td.n{text-align:right;font-variant-numeric:tabular-nums}tr.fell td{color:#a33}
tr.best td{font-weight:bold}img{max-width:100%;display:block;margin:1em 0}
code,pre{background:#f4f4f4}pre{padding:1em;overflow:auto;font-size:12px}"""


def render_html(results: dict[str, Any], plots: dict[str, Path]) -> str:
    """One page with everything: the machine, the command, the table, the reasons, every plot
    inline (``data:image/png;base64``) and the JSON."""
    esc = html.escape
    title = f"skillmill backends: {results['model_class']} ({results['model']})"
    parts = [f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{esc(title)}</title>"
             f"<style>{STYLE}</style></head><body>", f"<h1>{esc(title)}</h1>",
             f"<p id=machine>{esc(results['machine']['line'])}</p>"]  # fmt: skip
    if results.get("command"):
        parts.append(f"<p>command: <code>{esc(results['command'])}</code></p>")
    parts.append(f"<p>{esc(results['precision'])}; {results['rounds']} alternating rounds, one "
                 f"process per engine each; {results['repeats']} timed calls per round after "
                 f"{results['warm_up']} warm-up; {results['threads']} thread{'s' if results['threads'] != 1 else ''}; load average before "
                 f"{_load(results, 'before')}, after {_load(results, 'after')}; measured "
                 f"{esc(results['started_at'])} to {esc(results['finished_at'])}</p>")  # fmt: skip
    parts.append("<table id=results><tr><th>shape</th><th>engine</th><th>status</th>"
                 "<th>median ms</th><th>p95 ms</th><th>items/s</th><th>first call s</th>"
                 "<th>peak MB</th><th>max rel. error</th><th>reason</th></tr>")  # fmt: skip
    for label in results["shapes"]:
        for name, engine in results["engines"].items():
            cell = engine["shapes"][label]
            kind = "best" if results["fastest"].get(label) == name else \
                ("fell" if cell["status"] != MEASURED else "")  # fmt: skip
            cells = [_num(cell.get(k), spec, 0).strip() for k, spec in
                     (("median_ms", ".3f"), ("p95_ms", ".3f"), ("throughput", ".1f"),
                      ("first_call_s", ".2f"))]  # fmt: skip
            cells.append(_num(_mb(cell.get("peak_rss_bytes")), ".0f", 0).strip())
            cells.append(_num(cell.get("max_relative_error"), ".1e", 0).strip())
            numbers = "".join(f"<td class=n>{c}</td>" for c in cells)
            parts.append(f"<tr class='{kind}' data-engine='{esc(name)}' data-status="
                         f"'{esc(cell['status'])}'><td>{label}</td><td>{esc(name)}</td>"
                         f"<td>{esc(_status_word(cell))}</td>{numbers}"
                         f"<td>{esc(cell.get('reason') or '')}</td></tr>")  # fmt: skip
    parts.append("</table><p>bold: the fastest engine at that shape whose parity passed. An "
                 "engine that fell back ran as another engine and is never timed as itself.</p>")  # fmt: skip
    fell = {n: e["reason"] for n, e in results["engines"].items() if e["status"] == FELL_BACK}
    if fell:
        parts.append("<h2>Fell back</h2><ul>" + "".join(
            f"<li><b>{esc(n)}</b>: {esc(r or '')}</li>" for n, r in fell.items()) + "</ul>")  # fmt: skip
    for stem, path in plots.items():
        data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
        parts.append(f"<h2>{esc(PLOTS.get(stem, stem))}</h2><img id='plot-{stem}' "
                     f"alt='{esc(PLOTS.get(stem, stem))}' src='data:image/png;base64,{data}'>")  # fmt: skip
    parts.append("<h2>Results (JSON)</h2><pre id=json>"
                 f"{esc(json.dumps(results, indent=1))}</pre></body></html>")  # fmt: skip
    return "\n".join(parts)


def write_report(results: dict[str, Any], folder: str | Path) -> dict[str, Path]:
    """``folder``/backends.json, the PNGs and backends.html; returns their paths by name."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    json_path = folder / "backends.json"
    json_path.write_text(json.dumps(results, indent=1), encoding="utf-8")
    plots = write_plots(results, folder)
    html_path = folder / "backends.html"
    html_path.write_text(render_html(results, plots), encoding="utf-8")
    return {"json": json_path, "html": html_path, **plots}
