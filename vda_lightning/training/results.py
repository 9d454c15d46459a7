"""The final validation table (before vs after training) as text and as an atomically written JSON file."""
from __future__ import annotations

import json

from ..io import write_bytes_atomic


def format_results_table(before: dict[str, dict] | None, after: dict[str, dict]) -> str:
    """Plain-text table: one row per dataset and metric, before/after columns when `before` is known."""
    lines = []
    columns = f"{'before':>10} {'after':>10} {'change':>8}" if before else f"{'value':>10}"
    head = f"{'dataset':<16} {'metric':<8} " + columns
    lines += [head, "-" * len(head)]
    for name in sorted(after):
        for metric, value in after[name].items():
            if before and name in before and metric in before[name]:
                old = before[name][metric]
                change = f"{100 * (value - old) / old:+.1f}%" if old else "n/a"
                lines.append(f"{name:<16} {metric:<8} {old:>10.4f} {value:>10.4f} {change:>8}")
            else:
                lines.append(f"{name:<16} {metric:<8} {value:>10.4f}")
    return "\n".join(lines)


def write_results(path: str, before: dict | None, after: dict, step: int) -> None:
    payload = {"step": step, "before": before, "after": after}
    write_bytes_atomic(path, json.dumps(payload, indent=1).encode(), fsync=True)
