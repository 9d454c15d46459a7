"""Seeded cases in the CUT3R family's three splits, and the same cases written in our benchmark layout.

`build_cases(seed)` -> {split: [case]}: each case a sequence with the ground truth as stored (Sintel float32
.dpt values; Bonn / KITTI 16-bit PNG values), the ground truth as the family's readers give it, and float32
depth predictions at their own resolution (some smaller, some larger than the ground truth, some equal).
The ground truth goes past the caps, holds zeros and (Sintel) values above the 70 m clip; the predictions are
affine in the true depth with noise and outliers, so each alignment has something to fit.
`write_benchmark(root, preds, cases)` writes `<root>/<dataset>/<json_name>` with its files and the predictions
as per-frame .npy in our layout (`<preds>/<dataset>/<image path>.npy`).
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from vda_lightning.evaluation.cut3r_splits import CUT3R_SPLITS
from vda_lightning.io import write_dpt

FRAMES = 3
# split -> (ground-truth (H, W), true depth range, fraction of missing ground truth, prediction shapes to cycle)
SHAPES = {"sintel": ((10, 14), (1.0, 95.0), 0.02, [(5, 7), (10, 14), (20, 28)]),
          "bonn": ((8, 12), (0.3, 12.0), 0.15, [(16, 24), (8, 12)]),
          "kitti": ((9, 13), (2.0, 90.0), 0.7, [(9, 13), (6, 8)])}
KITTI_DRIVES = ("2011_09_26_drive_0002_sync", "2011_09_26_drive_0079_sync")


def _sequence_names(split) -> tuple:
    return split.sequences if split.sequences is not None else KITTI_DRIVES


def _case(rng: np.random.Generator, split, name: str, index: int) -> dict:
    (h, w), (lo, hi), missing, pred_shapes = SHAPES[split.name]
    true = rng.uniform(lo, hi, (FRAMES, h, w))
    if split.gt_dtype == "float32":  # Sintel: raw metres as float32, a few zeros
        stored = true.astype(np.float32)
        stored[rng.random(stored.shape) < missing] = 0
        gt = stored.copy()
    else:  # PNG / factor in float64, zeros -> -1, as the family reads them
        stored = np.clip(np.round(true * split.factor), 0, 65535).astype(np.uint16)
        stored[rng.random(stored.shape) < missing] = 0
        gt = stored.astype(np.float64) / split.factor
        gt[stored == 0] = -1.0
    scale, shift = rng.uniform(0.3, 3.0), rng.uniform(-0.5, 2.0)
    noisy = scale * true * rng.lognormal(0.0, 0.1, true.shape) + shift
    noisy[rng.random(true.shape) < 0.03] *= 4.0  # outliers: what the L1 fits are for
    ph, pw = pred_shapes[index % len(pred_shapes)]
    pred = np.stack([cv2.resize(f.astype(np.float32), (pw, ph), interpolation=cv2.INTER_LINEAR) for f in noisy])
    return {"name": name, "stored": stored, "gt": gt, "pred": pred.astype(np.float32)}


def build_cases(seed: int = 0) -> dict[str, list[dict]]:
    rng = np.random.default_rng(seed)
    return {key: [_case(rng, split, name, i) for i, name in enumerate(_sequence_names(split))]
            for key, split in CUT3R_SPLITS.items()}


def write_benchmark(root: Path, preds: Path, cases: dict[str, list[dict]]) -> None:
    for key, seqs in cases.items():
        split = CUT3R_SPLITS[key]
        folder = Path(root) / split.dataset
        index = []
        for case in seqs:
            entries = []
            for t in range(FRAMES):
                stem = f"frame_{t + 1:04d}"
                depth = f"{case['name']}/{split.depth_dir}/{stem}{'.dpt' if split.gt_dtype == 'float32' else '.png'}"
                image = f"{case['name']}/{split.image_dir}/{stem}.png"
                (folder / depth).parent.mkdir(parents=True, exist_ok=True)
                if depth.endswith(".dpt"):
                    write_dpt(folder / depth, case["stored"][t])
                else:
                    cv2.imwrite(str(folder / depth), case["stored"][t])
                pred_path = Path(preds) / split.dataset / image.replace(".png", ".npy")
                pred_path.parent.mkdir(parents=True, exist_ok=True)
                np.save(pred_path, case["pred"][t])
                entries.append({"image": image, "gt_depth": depth, "factor": split.factor})
            index.append({case["name"]: entries})
        (folder / split.json_name).write_text(json.dumps({split.dataset: index}))
