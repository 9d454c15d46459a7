"""The speed levers' names and their parser, torch-free: commands check `--speed-levers` / `--levers` before
importing torch (issue 28); what each lever does is in `models/speed.py`."""
from __future__ import annotations

LEVERS = ("compile", "channels_last", "cuda_graphs")


def parse_levers(text: str | list[str] | None) -> list[str]:
    """'compile,channels_last' -> ['compile', 'channels_last'] ('' / 'none' / None -> [])."""
    items = text if isinstance(text, list) else [t.strip() for t in (text or "").split(",")]
    items = [t for t in items if t and t != "none"]
    unknown = sorted(set(items) - set(LEVERS))
    if unknown:
        raise ValueError(f"unknown speed lever(s) {unknown}; choose from {', '.join(LEVERS)} (or none)")
    return list(dict.fromkeys(items))
