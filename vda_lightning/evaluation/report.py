"""Tables in the paper's shape (AbsRel↓ / δ1↑ per benchmark, ScanNet TAE↓, δ1 rank) and atomic JSON/CSV/MD files."""
from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Literal

from typing_extensions import Required, TypedDict  # pydantic needs these on Python < 3.12

from ..io import write_text_atomic
from ..trust import ReadError, display, read_json, validate

_TITLES = {"kitti": "KITTI", "scannet": "ScanNet", "bonn": "Bonn", "nyuv2": "NYUv2", "sintel": "Sintel"}


def _title(name: str) -> str:
    base, _, suffix = name.partition("_")
    return _TITLES.get(base, base) + (f" ({suffix})" if suffix else "")


def delta1_ranks(runs: dict[str, dict]) -> dict[str, float]:
    """Mean over benchmarks of each run's δ1 rank (1 = best; ties share the better rank)."""
    benchmarks = sorted({b for r in runs.values() for b in r.get("depth", {})})
    ranks: dict[str, list[int]] = {label: [] for label in runs}
    for bench in benchmarks:
        scored = {label: r["depth"][bench]["delta1_acc"] for label, r in runs.items() if bench in r.get("depth", {})}
        for label, value in scored.items():
            ranks[label].append(1 + sum(other > value for other in scored.values()))
    return {label: sum(v) / len(v) for label, v in ranks.items() if v}


def alignment_of(results: dict) -> str:
    """The alignment a results file was scored with (files from before `--alignment` existed: the published one)."""
    return results.get("alignment", "scale_shift")


def protocol_of(results: dict) -> str:
    """The protocol a results file was scored under (files from before `--protocol` existed: the vda one)."""
    return results.get("protocol", "vda")


def markdown_table(runs: dict[str, dict]) -> str:
    """One row per run; columns in registry order of appearance, then TAE, then δ1 rank when runs > 1.

    The alignment is in the header (`method [alignment: none]`) when every run shares it; runs scored under
    different alignments get an `alignment` column instead (their numbers are not comparable)."""
    benchmarks: list[str] = []
    for r in runs.values():
        benchmarks += [b for b in r.get("depth", {}) if b not in benchmarks]
    tae_names: list[str] = []
    for r in runs.values():
        tae_names += [t for t in r.get("tae", {}) if t not in tae_names]
    alignments = {label: alignment_of(r) for label, r in runs.items()}
    kinds = sorted(set(alignments.values())) or ["scale_shift"]
    shared = len(kinds) == 1
    protocols = sorted({protocol_of(r) for r in runs.values()})
    said = f"protocol: {protocols[0]}, " if protocols != ["vda"] else ""  # the vda header as it always was
    header = [f"method [{said}alignment: {kinds[0]}]" if shared else (f"method [{said[:-2]}]" if said else "method")]
    if not shared:
        header.append("alignment")
    for b in benchmarks:
        header += [f"{_title(b)} AbsRel↓", f"{_title(b)} δ1↑"]
    header += [f"{_title(t)} TAE↓" for t in tae_names]
    ranks = delta1_ranks(runs) if len(runs) > 1 else {}
    if ranks:
        header.append("δ1 rank↓")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, r in runs.items():
        row = [label] if shared else [label, alignments[label]]
        for b in benchmarks:
            d = r.get("depth", {}).get(b)
            row += [f"{d['abs_relative_difference']:.3f}", f"{d['delta1_acc']:.3f}"] if d else ["–", "–"]
        row += [f"{r['tae'][t]['mean']:.3f}" if t in r.get("tae", {}) else "–" for t in tae_names]
        if ranks:
            row.append(f"{ranks[label]:.2f}" if label in ranks else "–")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


EXTRA_TITLES = {"boundary_f1": "boundary F1↑", "abs_rel_sequence_aligned": "AbsRel seq-aligned↓",
                "abs_rel_frame_aligned": "AbsRel frame-aligned↓", "abs_rel_first_quarter": "AbsRel first ¼↓",
                "abs_rel_last_quarter": "AbsRel last ¼↓"}


def extras_table(runs: dict[str, dict]) -> str:
    """`vda eval --metrics` scores (boundary F1, drift), one row per run and benchmark; "" when no run has any.
    Drift reads across a row: sequence- minus frame-aligned AbsRel is what inconsistency costs, first vs last
    quarter whether it grows along the video (`evaluation/drift.py`)."""
    keys: list[str] = []
    for r in runs.values():
        for d in r.get("depth", {}).values():
            keys += [k for k in d.get("extra", {}) if k not in keys]
    if not keys:
        return ""
    header = ["method", "benchmark"] + [EXTRA_TITLES.get(k, k) for k in keys]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, r in runs.items():
        for bench, d in r.get("depth", {}).items():
            extra = d.get("extra", {})
            lines.append("| " + " | ".join([label, _title(bench)] + [f"{extra[k]:.3f}" if k in extra else "–"
                                                                     for k in keys]) + " |")
    return "\n".join(lines) + "\n"


def skipped_frames_note(results: dict) -> str:
    notes = []
    for kind in ("depth", "tae"):
        for name, r in results.get(kind, {}).items():
            missing = r.get("missing_predictions") or {}
            n = sum(len(v) for v in missing.values())
            if n:
                first = next(iter(missing.values()))[0]
                notes.append(f"{'TAE ' if kind == 'tae' else ''}{name}: {n} prediction file(s) missing in "
                             f"{len(missing)} sequence(s) — those frames were skipped, as the published evaluation "
                             f"does (first: {first})")
    return "\n".join(notes)


def results_csv(results: dict) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["benchmark", "scene", "abs_rel", "rmse", "delta1", "tae", "frames", "missing_predictions"])
    for name, r in results.get("depth", {}).items():
        for scene, (a, rm, d), frames in zip(r["scenes"], r["per_scene"], r["frames"]):
            w.writerow([name, scene, repr(a), repr(rm), repr(d), "", frames,
                        len(r["missing_predictions"].get(scene, []))])
        w.writerow([name, "mean", repr(r["abs_relative_difference"]), repr(r["rmse_linear"]),
                    repr(r["delta1_acc"]), "", "", ""])
    for name, r in results.get("tae", {}).items():
        for scene, value in zip(r["scenes"], r["per_scene"]):
            w.writerow([f"tae_{name}", scene, "", "", "", repr(value), "",
                        len(r["missing_predictions"].get(scene, []))])
        w.writerow([f"tae_{name}", "mean", "", "", "", repr(r["mean"]), "", ""])
    return buf.getvalue()


def write_results(results: dict, output: Path, label: str) -> list[Path]:
    """`output` (.json) plus `.csv` and `.md` beside it, each written atomically."""
    output = Path(output)
    md = f"# vda-eval: {label}\n\n" + markdown_table({label: results})
    extras = extras_table({label: results})
    if extras:
        md += "\n" + extras
    note = skipped_frames_note(results)
    if note:
        md += "\n" + "\n".join(f"- {line}" for line in note.splitlines()) + "\n"
    paths = [output, output.with_suffix(".csv"), output.with_suffix(".md")]
    write_text_atomic(paths[0], json.dumps(results, indent=1) + "\n")
    write_text_atomic(paths[1], results_csv(results))
    write_text_atomic(paths[2], md)
    return paths


class _Scores(TypedDict):
    abs_relative_difference: float
    delta1_acc: float


class _TAEScores(TypedDict):
    mean: float


class _Meta(TypedDict, total=False):
    label: str | None


class _Results(TypedDict, total=False):
    """What `markdown_table` and `--compare` read of a results file; other keys are kept as they are."""
    depth: Required[dict[str, _Scores]]
    tae: dict[str, _TAEScores]
    alignment: Literal["scale_shift", "scale", "none"]
    protocol: Literal["vda", "cut3r"]
    meta: _Meta | None


def load_results(path: Path) -> dict:
    """A results file written by `write_results`, read through the trust boundary (`trust.read_json`: regular
    file, size cap, no NaN tokens) and checked against what the table reads (`_Results`), in one line if not."""
    path = Path(path)
    if not os.path.lexists(path):
        raise ReadError(f"{display(path)}: results file not found")
    data = read_json(path, "results file")
    if not isinstance(data, dict) or "depth" not in data:
        raise ReadError(f"{display(path)}: not a vda-eval results file (no 'depth' key)")
    validate(_Results, data, f"{display(path)}: not a vda-eval results file")
    return data
