"""The short human tables `vda shard synthetic` and `vda shard inspect` print (the JSON summary is behind
`--json`): what a user checks after writing or reading shards — samples, frames, sizes, depth range, and what
was skipped and why."""
from __future__ import annotations

import os


def _size(nbytes: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if nbytes < 1000 or unit == "GB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000
    raise AssertionError("unreachable")


def _rows(header: list[str], rows: list[list[str]], text_last: bool = False) -> list[str]:
    """Aligned columns: names left, numbers right (a `text_last` column left too)."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    left = {0, len(header) - 1} if text_last else {0}
    return ["  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
            for r in [header, *rows]]


def synthetic_table(paths_by_split: dict[str, list[str]], clip_len: int, height: int, width: int,
                    clips: dict[str, int], out: str) -> str:
    """Per split: shards, samples, frames, bytes on disk; then the frame size and where the shards are."""
    rows = []
    for split, paths in paths_by_split.items():
        n = clips.get(split, 0)
        frames = n * (1 if split == "image" else clip_len)
        size = sum(os.path.getsize(p) for p in paths if os.path.exists(p))
        rows.append([split, str(len(paths)), str(n), str(frames), _size(size)])
    lines = _rows(["split", "shards", "samples", "frames", "size"], rows)
    lines.append(f"frames {height}x{width} (HxW), exact metric depth; in {out} "
                 f"(depth range and a full decode check: vda shard inspect {out})")
    return "\n".join(lines)


def _depth_range(s: dict) -> str:
    if s.get("min") is None:
        return "no valid pixel"
    units = f" {s['units']}" if s.get("units") and s["units"] != "unitless" else ""
    return (f"{s['kind']} {s['min']:.3g}-{s['max']:.3g}{units} (median ~{s['median']:.3g}), "
            f"{100 * s['valid_fraction']:.1f}% valid")


def inspect_table(summary: dict) -> str:
    """Totals, what was skipped by reason, then per dataset: samples, K/poses present, depth range."""
    counts = summary["counts"]
    reasons = ", ".join(f"{k} {v}" for k, v in counts.items() if k not in ("ok", "skipped") and v)
    lines = [f"{summary['shards']} shard(s): {counts['ok']} sample(s) read, {summary['frames']} frames; "
             f"skipped {counts['skipped']}" + (f" ({reasons})" if reasons else "")]
    rows = []
    for key, s in sorted(summary["depth"].items()):
        g = summary["geometry"].get(key.split(" [")[0], {})
        rows.append([key, str(g.get("samples", "")), str(g.get("with_K", "")), str(g.get("with_poses", "")),
                     _depth_range(s)])
    if rows:
        lines += _rows(["dataset", "samples", "with K", "with poses", "depth"], rows, text_last=True)
    return "\n".join(lines)
