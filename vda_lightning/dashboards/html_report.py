"""`vda eval --report DIR` (also with `--compare`): one self-contained HTML page people can look at, PNG charts
beside it for papers.

The page holds, in order: the paper-shaped table (`evaluation.report.markdown_table`, the one `vda eval` prints),
one per group of runs that share protocol, alignment and prediction kind (numbers from different groups are not
comparable, so they never share a table); the boundary/drift table when `--metrics` added them
(`evaluation.report.extras_table`); a per-sequence AbsRel chart and table (`eval_report.sequence_rows`, the rows
wandb gets); accuracy against consistency (δ1 against TAE, one point per run and, faint, per sequence); and a few
frames of input | prediction | ground truth | AbsRel error per dataset (`render.comparison_image`, the training
dashboard's panels and colours) for the first run whose predictions can be read. Charts are written as PNG files
(matplotlib's Agg canvas, no display needed) and embedded in the page as data URIs, so the .html file alone is the
whole report.
"""
from __future__ import annotations

import base64
import html
import io
import logging
from collections import defaultdict
from pathlib import Path

import numpy as np

from vda_lightning.dashboards.eval_report import SEQUENCE_COLUMNS, sequence_rows
from vda_lightning.evaluation.alignment import default_prediction_kind
from vda_lightning.evaluation.report import _title, alignment_of, extras_table, markdown_table
from vda_lightning.io import write_bytes_atomic, write_text_atomic

log = logging.getLogger(__name__)
REPORT_NAME = "index.html"
FRAMES_PER_DATASET = 3
_STYLE = """body{font-family:sans-serif;margin:24px;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:8px 0 20px}th,td{border:1px solid #bbb;padding:3px 8px;text-align:right}
th{background:#eee}td:first-child,th:first-child{text-align:left}img{max-width:100%;border:1px solid #ddd}
h2{border-bottom:1px solid #ccc;margin-top:32px}.note{color:#666}"""


def group_key(results: dict) -> tuple[str, str, str]:
    """(protocol, alignment, prediction kind) a results file was scored under; older files: the published ones."""
    alignment = alignment_of(results)
    return (results.get("protocol", "vda"), alignment,
            results.get("prediction_kind") or default_prediction_kind(alignment))


def grouped(runs: dict[str, dict]) -> dict[tuple[str, str, str], dict[str, dict]]:
    groups: dict[tuple[str, str, str], dict[str, dict]] = defaultdict(dict)
    for label, results in runs.items():
        groups[group_key(results)][label] = results
    return dict(groups)


def markdown_to_html(table: str) -> str:
    """A `| a | b |` Markdown table (header, rule, rows) as an HTML <table>, cells escaped."""
    lines = [line.strip().strip("|").split("|") for line in table.strip().splitlines()]
    head = "".join(f"<th>{html.escape(c.strip())}</th>" for c in lines[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c.strip())}</td>" for c in row) + "</tr>" for row in lines[2:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def rows_to_html(columns: list[str], rows: list[list]) -> str:
    cell = lambda v: "–" if v is None else f"{v:.4f}" if isinstance(v, float) else html.escape(str(v))  # noqa: E731
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def per_sequence_chart(runs: dict[str, dict]) -> bytes | None:
    """AbsRel of every sequence, one panel per benchmark, one bar colour per run."""
    from matplotlib.figure import Figure

    benchmarks = list(dict.fromkeys(b for r in runs.values() for b in r.get("depth", {})))
    if not benchmarks:
        return None
    fig = Figure(figsize=(3.6 * len(benchmarks), 3.2))
    for i, bench in enumerate(benchmarks):
        ax = fig.add_subplot(1, len(benchmarks), i + 1)
        scenes = list(dict.fromkeys(s for r in runs.values() for s in r.get("depth", {}).get(bench, {})
                                    .get("scenes", [])))
        width = 0.8 / len(runs)
        for j, (label, r) in enumerate(runs.items()):
            d = r.get("depth", {}).get(bench)
            if d:
                values = dict(zip(d["scenes"], (row[0] for row in d["per_scene"])))
                x = [k + j * width for k, s in enumerate(scenes) if s in values]
                ax.bar(x, [values[s] for s in scenes if s in values], width, label=label)
        ax.set_xticks([k + 0.4 - width / 2 for k in range(len(scenes))], scenes, rotation=45, ha="right",
                      fontsize=7)
        ax.set_title(_title(bench))
        ax.set_ylabel("AbsRel ↓" if i == 0 else "")
    fig.axes[-1].legend(fontsize=7)
    return _png(fig)


def _delta1_for(results: dict, tae_name: str) -> float | None:
    """δ1 beside a TAE: the same benchmark's (ScanNet's) when scored, else the mean over the run's benchmarks."""
    depth = results.get("depth", {})
    same = [d["delta1_acc"] for b, d in depth.items() if b.split("_")[0] == tae_name]
    values = same or [d["delta1_acc"] for d in depth.values()]
    return float(np.mean(values)) if values else None


def accuracy_consistency_chart(runs: dict[str, dict]) -> bytes | None:
    """δ1 (up = more accurate) against TAE (left = more consistent): a point per run, faint points per sequence
    where the TAE's sequences are also scored for depth."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.0, 3.8))
    ax = fig.add_subplot(1, 1, 1)
    drawn = False
    for label, r in runs.items():
        for tae_name, t in r.get("tae", {}).items():
            delta1 = _delta1_for(r, tae_name)
            if delta1 is None:
                continue
            point = ax.scatter([t["mean"]], [delta1], s=60, label=f"{label} ({_title(tae_name)})", zorder=3)
            depth = next((d for b, d in r.get("depth", {}).items() if b.split("_")[0] == tae_name), None)
            if depth:
                per_scene = dict(zip(depth["scenes"], (row[2] for row in depth["per_scene"])))
                pairs = [(v, per_scene[s]) for s, v in zip(t["scenes"], t["per_scene"]) if s in per_scene]
                if pairs:
                    ax.scatter(*zip(*pairs), s=18, alpha=0.35, color=point.get_facecolor()[0])
            drawn = True
    if not drawn:
        return None
    ax.set_xlabel("TAE ↓ (temporal consistency)")
    ax.set_ylabel("δ1 ↑ (accuracy)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _png(fig)


def _img(name: str, png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<p><img src="data:image/png;base64,{data}" alt="{html.escape(alt)}" title="{html.escape(name)}"></p>'


def write_report(out_dir: Path, runs: dict[str, dict], source=None) -> Path:
    """Write `out_dir/index.html` and the PNGs beside it; `source` (a prediction source) shows example frames of
    the first run, else the first run whose results name a readable predictions folder. Returns the page's path."""
    from vda_lightning.dashboards.report_frames import example_frames

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = [f"<h1>vda eval report</h1><p>runs: {html.escape(', '.join(runs))}</p>", "<h2>Results</h2>"]
    for (protocol, alignment, kind), group in grouped(runs).items():
        parts.append(f"<h3>protocol {html.escape(protocol)} · alignment {html.escape(alignment)} · "
                     f"predictions: {html.escape(kind)}</h3>" + markdown_to_html(markdown_table(group)))
    extras = extras_table(runs)
    if extras:
        parts.append("<h2>Boundary sharpness and drift</h2>" + markdown_to_html(extras))
    pngs: dict[str, bytes] = {}
    chart = per_sequence_chart(runs)
    parts.append("<h2>Per sequence</h2>")
    if chart:
        pngs["per_sequence.png"] = chart
        parts.append(_img("per_sequence.png", chart, "AbsRel per sequence"))
    parts.append(rows_to_html(["run", *SEQUENCE_COLUMNS],
                              [[label, *row] for label, r in runs.items() for row in sequence_rows(r)]))
    chart = accuracy_consistency_chart(runs)
    parts.append("<h2>Accuracy vs consistency</h2>")
    if chart:
        pngs["accuracy_vs_consistency.png"] = chart
        parts.append(_img("accuracy_vs_consistency.png", chart, "delta1 against TAE"))
    else:
        parts.append('<p class="note">no TAE in these results (vda eval --tae scores it)</p>')
    parts.append("<h2>Example frames</h2>")
    frames = example_frames(runs, source)
    for bench, (label, png) in frames.items():
        pngs[f"frames_{bench}.png"] = png
        parts.append(f"<h3>{html.escape(_title(bench))} ({html.escape(label)})</h3>"
                     + _img(f"frames_{bench}.png", png, f"{bench} frames"))
    if not frames:
        parts.append('<p class="note">no example frames: they are drawn for a vda-protocol run whose predictions '
                     'can be read (score saved predictions, or keep the --predictions folder the results name)</p>')
    for name, png in pngs.items():
        write_bytes_atomic(out_dir / name, png)
    page = (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>vda eval report</title>'
            f"<style>{_STYLE}</style></head><body>{''.join(parts)}</body></html>\n")
    write_text_atomic(out_dir / REPORT_NAME, page)
    return out_dir / REPORT_NAME
