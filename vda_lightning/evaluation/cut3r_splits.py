"""The CUT3R-family video-depth splits, written once: sequences, frame ranges, caps, ground-truth encoding.

Facts from CUT3R's `eval/video_depth/eval_depth.py` and `metadata.py` (and the MonST3R preparation scripts
`datasets_preprocess/prepare_bonn.py` and `prepare_kitti.py` they point to):
* Sintel: the 14 training sequences below (643 frames), every frame, the `final` pass; ground truth the raw
  float32 `.dpt`; valid below 70 m and the aligned prediction clipped at 70 m.
* Bonn RGB-D Dynamic: five sequences, frames [30:140] of each sorted RGB and depth list (110 each, paired by
  position); ground truth PNG / 5000 in float64, zeros -> -1; valid below 70 m (the published call's cap, not
  Bonn's 10 m), no clip.
* KITTI depth selection: every drive of the depth annotations' `val/` split, the first 110 annotated frames
  (`groundtruth/image_02`, sorted); ground truth PNG / 256 in float64, zeros -> -1; no cap, no clip.
Predictions are depth (that family writes depth) at any resolution, resized bicubic to the ground truth
(`evaluation/cut3r.py`). `vda prepare-benchmark` writes these indexes (`<root>/<dataset>/<json_name>`); `vda eval
--protocol cut3r` reads them. Plain data only: `vda eval --help` reads this module.
"""
from __future__ import annotations

from dataclasses import dataclass

SINTEL_SEQUENCES = ("alley_2", "ambush_4", "ambush_5", "ambush_6", "cave_2", "cave_4", "market_2", "market_5",
                    "market_6", "shaman_3", "sleeping_1", "sleeping_2", "temple_2", "temple_3")
BONN_PREFIX = "rgbd_bonn_"  # the raw dataset's folder prefix; the family names its prediction folders without it
BONN_SEQUENCES = tuple(BONN_PREFIX + s for s in ("balloon2", "crowd2", "crowd3", "person_tracking2", "synchronous"))
KITTI_CAMERA_SUFFIX = "_02"  # the family's sequence folders are <drive>_02 (left colour camera)


@dataclass(frozen=True)
class Cut3rSplit:
    name: str                      # --benchmark key under --protocol cut3r
    dataset: str                   # folder under the benchmark root (shared with the vda protocol's files)
    json_name: str
    sequences: tuple | None        # the split's sequences (raw folder names); None = every one in the index
    frames: tuple                  # (start, stop) of each sequence's sorted frames; stop None = to the end
    max_depth: float | None        # valid ground truth: 0 < gt < max_depth (None: no upper bound)
    post_clip_max: float | None    # the aligned prediction clipped from above (None: not clipped)
    gt_dtype: str                  # the dtype the family's reader gives: float32 (.dpt) or float64 (PNG / factor)
    factor: float                  # stored ground-truth value / factor = metres
    zero_gt: float | None          # what a ground-truth 0 becomes (-1 for the PNG datasets; None: kept)
    image_dir: str                 # the frames' folder in each sequence of our layout
    depth_dir: str



CUT3R_SPLITS: dict[str, Cut3rSplit] = {s.name: s for s in [
    Cut3rSplit("sintel", dataset="sintel", json_name="sintel_cut3r.json", sequences=SINTEL_SEQUENCES,
               frames=(0, None), max_depth=70.0, post_clip_max=70.0, gt_dtype="float32", factor=1.0, zero_gt=None,
               image_dir="final", depth_dir="depth_dpt"),
    Cut3rSplit("bonn", dataset="bonn", json_name="bonn_cut3r.json", sequences=BONN_SEQUENCES, frames=(30, 140),
               max_depth=70.0, post_clip_max=None, gt_dtype="float64", factor=5000.0, zero_gt=-1.0,
               image_dir="rgb", depth_dir="depth"),
    Cut3rSplit("kitti", dataset="kitti", json_name="kitti_cut3r.json", sequences=None, frames=(0, 110),
               max_depth=None, post_clip_max=None, gt_dtype="float64", factor=256.0, zero_gt=-1.0,
               image_dir="rgb", depth_dir="depth"),
]}
PROTOCOLS = ("vda", "cut3r")
DEFAULT_ALIGNMENT = {"vda": "scale_shift", "cut3r": "scale"}  # cut3r: its run.sh scores with --align scale


def prediction_folders(dataset: str, sequence: str) -> tuple[str, ...]:
    """Names a sequence's prediction folder (or .npz) may have: ours, then the family's (`balloon2` for
    `rgbd_bonn_balloon2`, `<drive>_02` for a KITTI drive)."""
    names = [sequence]
    if dataset == "bonn" and sequence.startswith(BONN_PREFIX):
        names.append(sequence[len(BONN_PREFIX):])
    if dataset == "kitti":
        names.append(sequence + KITTI_CAMERA_SUFFIX)
    return tuple(names)


def get_split(name: str) -> Cut3rSplit:
    if name not in CUT3R_SPLITS:
        from ..io.benchmark_json import BenchmarkError

        raise BenchmarkError(f"unknown cut3r benchmark {name!r}; known: {', '.join(CUT3R_SPLITS)}")
    return CUT3R_SPLITS[name]
