"""The benchmark registry: every published setting in one declarative table, and the sequences to score.

It stands in io/, beside the index parser (`benchmark_json.py`), because three floors read it: the DataModule's
validation streams (data/), the training evaluator (training/) and `vda eval` (evaluation/).

Layout (what `vda-prepare-benchmark` writes and the published extractors wrote):
`<root>/<dataset>/<json_name>` = {"<dataset>": [{"<sequence>": [{"image", "gt_depth", "factor"[, "K", "pose"]},
...]}, ...]}, paths relative to `<root>/<dataset>/`. Predictions live at
`<pred>/<dataset>/<image path with .png/.jpg → .npy>` (so short and `_500` runs of one dataset share paths).

Protocol quirks reproduced on purpose (published `benchmark/eval/eval.py`, `eval_tae.py` and the `eval*.sh` wrappers):
* The GT crop uses Python slice semantics: KITTI's [0:374, 0:1242] and Bonn's [0:480, 0:640] are no-ops on smaller
  images; ScanNet/NYUv2 crops are real.
* Accuracy: the prediction is *resized* (cv2 bilinear) to the cropped GT, never cropped — ScanNet predictions are
  made on pre-cropped images. TAE: the prediction is *cropped* like the GT (`--hard_crop`), then resized only if
  the shapes still differ.
* GT zeros become −1 for accuracy and stay 0 for TAE: both fall outside (1e-3, max_depth), so both are invalid.
* `max_eval_len` truncates the JSON frame list *before* missing predictions are skipped.
* TAE uses each frame's 4×4 K as stored (not corrected for the [8:-8, 11:-11] crop).
* `min_depth_eval = 0.1` is declared by the published script but never used: the floor is 1e-3.
* Sequences are sorted by name (the published JSONs follow glob order), frames keep their JSON order.
* There is no published short `nyuv2` setting (only `nyuv2_500`). Our `nyuv2` is a declared choice: the first
  110 frames (like KITTI/Bonn's DepthCrafter length) of `nyuv2_video.json`, which `vda-prepare-benchmark` writes.
  Its numbers match no paper table.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .benchmark_json import BenchmarkError, Sequence, read_benchmark_index

Crop = tuple  # (row_start, row_stop, col_start, col_stop), Python slice bounds, None = open


@dataclass(frozen=True)
class BenchmarkSpec:
    name: str            # CLI key
    dataset: str         # folder under the root, JSON top-level key, and prediction sub-folder
    json_name: str
    crop: Crop
    max_depth: float
    max_eval_len: int
    factor: float        # depth PNG value / factor = metres (written into the JSON by the extractor)
    json_frames: tuple   # (start, stop, step) the extractor keeps from each sorted sequence
    published: bool = True
    note: str = ""

    def crop_slices(self) -> tuple[slice, slice]:
        a, b, c, d = self.crop
        return slice(a, b), slice(c, d)


@dataclass(frozen=True)
class TAESpec:
    name: str
    dataset: str
    json_names: tuple    # first existing one is used
    crop: Crop
    max_depth: float
    frame_range: tuple   # (start, stop) slice of each sequence's frame list
    max_sequences: int   # the first N sequences (sorted by name)
    json_frames: tuple = (0, 192, 1)

    def crop_slices(self) -> tuple[slice, slice]:
        a, b, c, d = self.crop
        return slice(a, b), slice(c, d)


_KITTI = dict(dataset="kitti", crop=(0, 374, 0, 1242), max_depth=80.0, factor=256.0)
_BONN = dict(dataset="bonn", crop=(0, 480, 0, 640), max_depth=10.0, factor=5000.0)
_SCANNET = dict(dataset="scannet", crop=(8, -8, 11, -11), max_depth=10.0, factor=1000.0)
_NYU = dict(dataset="nyuv2", crop=(45, 471, 41, 601), max_depth=10.0, factor=6000.0)

BENCHMARKS: dict[str, BenchmarkSpec] = {s.name: s for s in [
    BenchmarkSpec("kitti", json_name="kitti_video.json", max_eval_len=110, json_frames=(0, 110, 1), **_KITTI),
    BenchmarkSpec("kitti_500", json_name="kitti_video_500.json", max_eval_len=500, json_frames=(0, 500, 1),
                  **_KITTI),
    BenchmarkSpec("bonn", json_name="bonn_video.json", max_eval_len=110, json_frames=(30, 140, 1), **_BONN),
    BenchmarkSpec("bonn_500", json_name="bonn_video_500.json", max_eval_len=500, json_frames=(0, 500, 1), **_BONN),
    BenchmarkSpec("scannet", json_name="scannet_video.json", max_eval_len=90, json_frames=(0, 270, 3),
                  **_SCANNET),
    BenchmarkSpec("scannet_500", json_name="scannet_video_500.json", max_eval_len=500, json_frames=(0, 500, 1),
                  **_SCANNET),
    BenchmarkSpec("nyuv2", json_name="nyuv2_video.json", max_eval_len=110, json_frames=(0, 110, 1),
                  published=False, note="not a published setting (see module docstring)", **_NYU),
    BenchmarkSpec("nyuv2_500", json_name="nyuv2_video_500.json", max_eval_len=500, json_frames=(0, 500, 1),
                  **_NYU),
    BenchmarkSpec("sintel", dataset="sintel", json_name="sintel_video.json", crop=(0, 436, 0, 1024),
                  max_depth=70.0, max_eval_len=100, factor=65535 / 650, json_frames=(0, None, 1)),
]}

# ScanNet TAE (eval_tae.sh): frames [10:180], first 20 scenes, crop GT and prediction, uncorrected K.
# The extractor's `scannet_video_tae.json` (uncropped `color_origin` frames 0..191 with K and pose) is preferred;
# the published script itself reads `scannet_video.json`, which works when its entries carry K/pose.
TAE_SETTINGS: dict[str, TAESpec] = {"scannet": TAESpec(
    name="scannet", dataset="scannet", json_names=("scannet_video_tae.json", "scannet_video.json"),
    crop=(8, -8, 11, -11), max_depth=10.0, frame_range=(10, 180), max_sequences=20)}


def get_benchmark(name: str) -> BenchmarkSpec:
    if name not in BENCHMARKS:
        raise BenchmarkError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
    return BENCHMARKS[name]


def read_sequences(json_path: Path, dataset: str, need_pose: bool = False) -> list[Sequence]:
    """All sequences of a published-layout JSON (`io.read_benchmark_index`), sorted by name; frames keep their
    JSON order."""
    json_path = check_index(json_path)
    return sorted(read_benchmark_index(json_path, [dataset], need_pose), key=lambda s: s.name)


def check_index(json_path: Path) -> Path:
    """`json_path` if it is a file, else the one-line BenchmarkError (also `vda eval`'s check before weight)."""
    json_path = Path(json_path)
    if not json_path.is_file():
        raise BenchmarkError(f"{json_path}: benchmark index not found (run vda-prepare-benchmark, or check "
                             "--benchmark-root)")
    return json_path


def load_benchmark(root: Path, spec: BenchmarkSpec) -> list[Sequence]:
    check_root(root)
    return read_sequences(Path(root) / spec.dataset / spec.json_name, spec.dataset)


def load_tae_benchmark(root: Path, spec: TAESpec) -> list[Sequence]:
    check_root(root)
    candidates = [Path(root) / spec.dataset / n for n in spec.json_names]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise BenchmarkError(f"{candidates[0]}: TAE index not found (nor {', '.join(str(p) for p in candidates[1:])})")
    return read_sequences(path, spec.dataset, need_pose=True)[: spec.max_sequences]


def check_root(root: Path) -> None:
    """A BenchmarkError unless `root` is a folder holding something (also `vda eval`'s check before weight)."""
    root = Path(root)
    if not root.is_dir():
        raise BenchmarkError(f"{root}: benchmark root is not a directory")
    if not any(root.iterdir()):
        raise BenchmarkError(f"{root}: benchmark root is empty (expected <root>/<dataset>/<dataset>_video.json; "
                             "see vda-prepare-benchmark)")


def stream_benchmark(dataset: str, declared: dict[str, str | None] | None = None) -> str | None:
    """The registered benchmark that scores a validation stream of `dataset` during training: the one the config
    declares for it (`data.init_args.val.benchmarks`; None there means the config's default settings), else the
    benchmark of that very name (`kitti`, `bonn_500`, ...), else None (the config's default settings)."""
    if declared and dataset in declared:
        return declared[dataset]
    return dataset if dataset in BENCHMARKS else None


def tae_setting(benchmark: str) -> TAESpec | None:
    """The published TAE setting for a benchmark's dataset (ScanNet only), or None."""
    return TAE_SETTINGS.get(get_benchmark(benchmark).dataset)
