"""A few frames of input | prediction | ground truth | AbsRel error per dataset, for `vda eval --report`.

The prediction is aligned exactly as it was scored (`functional.align_to_ground_truth` under the run's alignment
and prediction kind) and shown as disparity on the GT disparity's 2nd-98th percentile range, with the training
dashboard's panels and colours (`render.comparison_image`: inferno, error in magma from 0 to 50 % AbsRel).
The frames come from the first sequence of each benchmark, spread evenly over its scored frames.
"""
from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import torch

from vda_lightning.dashboards.render import GAP, comparison_image, fit_size, labelled, resize
from vda_lightning.evaluation.alignment import default_prediction_kind
from vda_lightning.evaluation.functional import align_to_ground_truth
from vda_lightning.evaluation.predictions import NpyPredictions
from vda_lightning.evaluation.report import alignment_of
from vda_lightning.evaluation.sequences import accuracy_arrays
from vda_lightning.io import read_frames
from vda_lightning.io.benchmarks import get_benchmark, load_benchmark
from vda_lightning.trust import ReadError

log = logging.getLogger(__name__)
MAX_SIDE = 320  # each panel's longest side in the page
MIN_SIDE = 160  # smaller crops are enlarged by a whole factor (nearest), so a tiny benchmark stays readable


def _saved_source(results: dict):
    """The predictions folder a results file names, when it is still there (saved predictions)."""
    folder = (results.get("meta") or {}).get("predictions")
    return NpyPredictions(Path(folder)) if folder and Path(folder).is_dir() else None


def sequence_panels(sequence, spec, source, alignment: str, kind: str, count: int) -> np.ndarray:
    """`count` labelled comparison rows of one sequence, stacked top to bottom (uint8 RGB)."""
    arrays = accuracy_arrays(sequence, spec, source)
    depth, mask = align_to_ground_truth(torch.from_numpy(arrays.pred), torch.from_numpy(arrays.gt), spec.max_depth,
                                        None, alignment, kind)
    aligned = 1.0 / depth.numpy()
    mask = mask.numpy()
    gt_disp = np.where(mask, 1.0 / np.where(mask, arrays.gt, 1.0), np.nan)
    lo, hi = np.nanpercentile(gt_disp, [2, 98]) if mask.any() else (float(aligned.min()), float(aligned.max()))
    hw = fit_size(*arrays.gt.shape[1:], MAX_SIDE, MIN_SIDE)
    shown = sorted({int(round(x)) for x in np.linspace(0, len(arrays.frames) - 1, count)})
    images = read_frames(sequence.root / sequence.frames[arrays.frames[t]].image for t in shown)  # only these
    rows = []
    for t, image in zip(shown, images):
        image = resize(image[spec.crop_slices()], arrays.gt.shape[1:])  # the crop of a GT not the image's size
        row = comparison_image(resize(image, hw), resize(aligned[t].astype(np.float32), hw),
                               resize(gt_disp[t].astype(np.float32), hw, nearest=True), float(lo), float(hi))
        rows.append(labelled(row, f"{sequence.name}, frame {arrays.frames[t]}"))
    gap = np.full((GAP * 3, rows[0].shape[1], 3), 255, np.uint8)
    return np.concatenate([part for row in rows for part in (row, gap)][:-1], axis=0)


def example_frames(runs: dict[str, dict], source=None, count: int = 3) -> dict[str, tuple[str, bytes]]:
    """{benchmark: (run label, PNG bytes)} for the first vda-protocol run with readable predictions: `source`
    stands for the first run's; otherwise a run's saved predictions folder. A benchmark that cannot be shown is
    left out with a warning naming why (the report is written all the same)."""
    for label, results in runs.items():
        if results.get("protocol", "vda") != "vda":  # drawn with the vda alignments, which another protocol's
            continue                                  # names would only resemble
        src = source if source is not None else _saved_source(results)
        root = (results.get("meta") or {}).get("benchmark_root")
        if src is None or not root:
            continue
        alignment = alignment_of(results)
        kind = results.get("prediction_kind") or default_prediction_kind(alignment)
        out = {}
        for bench in results.get("depth", {}):
            try:
                spec = get_benchmark(bench)
                picture = sequence_panels(load_benchmark(Path(root), spec)[0], spec, src, alignment, kind, count)
            except (ReadError, OSError, ValueError) as err:  # BenchmarkError is a ValueError
                log.warning("report: no example frames for %s: %s", bench, err)
                continue
            ok, buf = cv2.imencode(".png", np.ascontiguousarray(picture[..., ::-1]))
            if ok:
                out[bench] = (label, buf.tobytes())
        return out
    return {}
