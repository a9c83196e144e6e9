"""The HTML page a person opens after `sphmask-bag eval` or `sphmask-predict`.

One self-contained `report.html` beside the run's files: the metrics table (AP / AP50 / AP25,
overall and per class), per-class precision/recall curves at IoU 0.5, a latency histogram and
percentiles per stage, instances per frame over time, and every render (linked, shown inline).
The plots are matplotlib PNGs under `report_files/`; the JSON reports stay for machines.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

PERCENTILES = (50, 90, 95, 99)


@dataclass
class ReportData:
    """What the page shows; every part may be empty.

    metrics: the evaluator's result (AP, AP50, AP25, per_class) or None (no ground truth);
    pr_curves: class -> (precision, recall, score) arrays at IoU 0.5;
    stages_ms: stage -> per-frame milliseconds; instances: per-frame instance counts, with
    times: per-frame seconds since the first frame (or frame indices); renders: PNG paths;
    facts: (name, value) rows shown at the top (model, bag, frames ...).
    """

    title: str
    metrics: dict | None = None
    pr_curves: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)
    stages_ms: Mapping[str, Sequence[float]] = field(default_factory=dict)
    instances: Sequence[int] = ()
    times: Sequence[float] = ()
    time_label: str = "frame"
    renders: Sequence[str | Path] = ()
    facts: Sequence[tuple[str, str]] = ()


def _figure(width_in: float, height_in: float):  # -> (Figure, canvas)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=100)
    return fig, FigureCanvasAgg(fig)


def plot_pr_curves(path: Path, curves: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]]) -> Path:
    fig, _ = _figure(7, 5)
    ax = fig.add_subplot(1, 1, 1)
    for name, (precision, recall, _) in sorted(curves.items()):
        # from the highest score down: recall never decreases along the curve
        ax.plot(np.asarray(recall)[::-1], np.asarray(precision)[::-1], drawstyle="steps-post", label=name, lw=1.2)
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title("precision / recall per class at IoU 0.5")
    ax.grid(True, lw=0.3)
    if curves:
        ax.legend(fontsize=7, ncol=2, loc="lower left")
    fig.savefig(path)
    return path


def plot_latency(path: Path, stages_ms: Mapping[str, Sequence[float]]) -> Path:
    fig, _ = _figure(7, 4)
    ax = fig.add_subplot(1, 1, 1)
    values = [np.asarray(v, dtype=np.float64) for v in stages_ms.values() if len(v)]
    if values:
        hi = max(float(v.max()) for v in values)
        bins = np.linspace(0.0, max(hi, 1e-3) * 1.02, 40)
        for name, v in stages_ms.items():
            if len(v):
                ax.hist(np.asarray(v, dtype=np.float64), bins=bins, histtype="step", lw=1.2, label=name)
        ax.legend(fontsize=7)
    ax.set_xlabel("milliseconds per frame")
    ax.set_ylabel("frames")
    ax.set_title("latency per stage")
    ax.grid(True, lw=0.3)
    fig.savefig(path)
    return path


def plot_instances(path: Path, instances: Sequence[int], times: Sequence[float], time_label: str) -> Path:
    fig, _ = _figure(7, 3)
    ax = fig.add_subplot(1, 1, 1)
    t = np.asarray(times if len(times) == len(instances) else np.arange(len(instances)), dtype=np.float64)
    ax.plot(t, np.asarray(instances), marker=".", lw=1.0)
    ax.set_xlabel(time_label)
    ax.set_ylabel("instances")
    ax.set_title("instances per frame")
    ax.grid(True, lw=0.3)
    fig.savefig(path)
    return path


def _num(v: object, fmt: str = "{:.3f}") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return fmt.format(v)


def _metrics_table(metrics: dict | None) -> str:
    if not metrics:
        return "<p>No ground truth: no metrics.</p>"
    rows = [f"<tr><th>all classes</th><td>{_num(metrics.get('AP'))}</td><td>{_num(metrics.get('AP50'))}</td>"
            f"<td>{_num(metrics.get('AP25'))}</td></tr>"]
    for name, m in metrics.get("per_class", {}).items():
        rows.append(f"<tr><td>{html.escape(str(name))}</td><td>{_num(m.get('AP'))}</td>"
                    f"<td>{_num(m.get('AP50'))}</td><td>{_num(m.get('AP25'))}</td></tr>")
    return ("<table><tr><th>class</th><th>AP</th><th>AP50</th><th>AP25</th></tr>" + "".join(rows) + "</table>")


def _latency_table(stages_ms: Mapping[str, Sequence[float]]) -> str:
    head = "".join(f"<th>p{q}</th>" for q in PERCENTILES)
    rows = []
    for name, v in stages_ms.items():
        arr = np.asarray(v, dtype=np.float64)
        cells = "".join(f"<td>{_num(float(np.percentile(arr, q)) if arr.size else None, '{:.1f}')}</td>"
                        for q in PERCENTILES)
        rows.append(f"<tr><td>{html.escape(name)}</td>{cells}<td>{_num(float(arr.mean()) if arr.size else None, '{:.1f}')}"
                    f"</td><td>{arr.size}</td></tr>")
    return (f"<table><tr><th>stage (ms)</th>{head}<th>mean</th><th>frames</th></tr>" + "".join(rows) + "</table>")


def _rel(path: Path, base: Path) -> str:
    try:
        return Path(path).resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return Path(path).resolve().as_uri()


def write_report(out_dir: str | Path, data: ReportData, name: str = "report.html") -> Path:
    """Write `out_dir/name` and its plots under `out_dir/report_files/`; returns the page's path."""
    out_dir = Path(out_dir)
    files = out_dir / "report_files"
    files.mkdir(parents=True, exist_ok=True)
    parts = [f"<h1>{html.escape(data.title)}</h1>"]
    if data.facts:
        parts.append("<table>" + "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                                         for k, v in data.facts) + "</table>")
    parts.append("<h2>Metrics</h2>" + _metrics_table(data.metrics))
    if data.pr_curves:
        plot_pr_curves(files / "pr_curves.png", data.pr_curves)
        parts.append('<h2>Precision / recall at IoU 0.5</h2><img src="report_files/pr_curves.png">')
    if any(len(v) for v in data.stages_ms.values()):
        plot_latency(files / "latency.png", data.stages_ms)
        parts.append("<h2>Latency</h2>" + _latency_table(data.stages_ms) + '<img src="report_files/latency.png">')
    if len(data.instances):
        plot_instances(files / "instances.png", data.instances, data.times, data.time_label)
        parts.append('<h2>Instances per frame</h2><img src="report_files/instances.png">')
    if data.renders:
        parts.append("<h2>Renders</h2>")
        for r in data.renders:
            href = html.escape(_rel(Path(r), out_dir))
            parts.append(f'<figure><a href="{href}"><img src="{href}" style="max-width:100%"></a>'
                         f"<figcaption>{html.escape(Path(r).name)}</figcaption></figure>")
    style = ("body{font-family:sans-serif;max-width:1500px;margin:1em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;"
             "text-align:right}th{background:#f3f3f3}img{max-width:100%}")
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(data.title)}</title>"
            f"<style>{style}</style></head><body>" + "\n".join(parts) + "</body></html>\n")
    path = out_dir / name
    path.write_text(page)
    return path


__all__ = ["ReportData", "plot_instances", "plot_latency", "plot_pr_curves", "write_report"]
