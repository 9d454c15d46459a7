"""The alignment choices of the evaluation and what a prediction holds (no torch: the CLI's --help reads them).

The math is in `functional.align_to_ground_truth`; its module docstring says what each alignment does.
"""
from __future__ import annotations

ALIGNMENTS = ("scale_shift", "scale", "none")  # scale_shift = the published relative protocol
PREDICTION_KINDS = ("disparity", "depth")


def default_prediction_kind(alignment: str) -> str:
    """What a prediction holds unless told: disparity under the relative protocol, depth under scale / none."""
    check_alignment(alignment)
    return "disparity" if alignment == "scale_shift" else "depth"


def check_alignment(alignment: str, prediction_kind: str | None = None) -> None:
    if alignment not in ALIGNMENTS:
        raise ValueError(f"alignment must be one of {', '.join(ALIGNMENTS)}, got {alignment!r}")
    if prediction_kind is not None and prediction_kind not in PREDICTION_KINDS:
        raise ValueError(f"prediction kind must be one of {', '.join(PREDICTION_KINDS)}, got {prediction_kind!r}")
