"""Predictions from a model: the published benchmark inference (infer/infer.py), with save and resume.

Per sequence, every frame listed in the JSON is read with `cv2.imread` + BGR→RGB (true-colour files on disk give
true RGB; see `prepare.py` on the published extractors' R/B swap) and the whole list goes through the long-video
inference as one video — fp32, input size 518, no down-scaling — so context matches the published run even when
only the first `max_eval_len` frames are scored. Each frame's disparity is saved as float32 `.npy` in the
published layout; a sequence whose files all exist already is read back instead of recomputed (resume).

The folder's `manifest.json` says what made them (checkpoint sha256, encoder, input size, precision, vda-lightning
version, `prediction_manifest`). It is written before the first prediction and compared before any is reused: a
folder made by another checkpoint or other settings (or holding predictions but no manifest) is refused with one
line, so one model's numbers are never reported as another's.

Trust (docs/reliability.md): a prediction path is derived from the index's image path (already confined to the
JSON's folder) and confined again to the predictions folder: `trust.confine` where it is read (`--predictions`,
resume), `trust.confine_output` where it is written (also refusing a symlinked folder that leads out). The
manifest is read with `trust.read_json` and checked against `SavedManifest`; a prediction `.npy` through
`io.read_npy` (header checked against its length and VDA_MAX_ARRAY_BYTES before anything is allocated).
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np
from typing_extensions import TypedDict  # pydantic needs this one on Python < 3.12

from ..io import list_files, read_depth, read_frames, read_npy, save_npy_atomic, write_json_atomic
from ..io.benchmark_json import BenchmarkError, Sequence
from ..models.configs import canonical_depth_to_metres
from ..models.input_contract import DEFAULT_INPUT_SIZE
from ..trust import ReadError, confine, confine_output, display, load_npz, read_json
from .cut3r_splits import prediction_folders
from .sequences import prediction_relpath

log = logging.getLogger(__name__)


PREDICTION_SUFFIXES = (".npy", ".npz", ".png", ".exr")  # what --predictions reads, per frame (first found wins)
NPZ_KEYS = ("depth", "disparity", "pred", "prediction")   # the array taken from an .npz holding several


def _npz_array(path: Path) -> np.ndarray:
    arrays = load_npz(path, f"{display(path)}: prediction", BenchmarkError)
    key = next((k for k in NPZ_KEYS if k in arrays), next(iter(arrays)) if len(arrays) == 1 else None)
    if key is None:
        raise BenchmarkError(f"{display(path)}: prediction .npz holds {sorted(arrays)}; name the array one of "
                             f"{', '.join(NPZ_KEYS)} or store only one")
    return arrays[key]


def _checked(raw: np.ndarray, path: Path, ndim: int = 2) -> np.ndarray:
    if raw.dtype.kind not in "fiu":
        raise BenchmarkError(f"{display(path)}: prediction holds {raw.dtype}, not real numbers")
    if raw.ndim != ndim or raw.size == 0:
        shape = "(H,W)" if ndim == 2 else "(T,H,W)"
        raise BenchmarkError(f"{display(path)}: prediction must be a non-empty {shape} array, got shape {raw.shape}")
    with np.errstate(over="ignore"):  # beyond float32 becomes inf: refused below, naming the file
        pred = raw.astype(np.float32)
    if not np.isfinite(pred).all():
        cause = "values beyond the float32 range" if np.isfinite(raw).all() else "NaN or inf"
        raise BenchmarkError(f"{display(path)}: prediction contains {cause}")
    return pred


def read_prediction(path: Path) -> np.ndarray:
    """One saved prediction: a non-empty (H, W) array of finite real numbers, as float32; anything else is one
    line naming the file (`ReadError` from the reader, `BenchmarkError` for the content).

    `.npy`; `.npz` (the array named depth / disparity / pred / prediction, or its only one); a 16-bit `.png` (the
    stored integers as they are: no factor, so a scale-free alignment, or depth already in the unit scored); an
    `.exr` (its Z / depth / Y / R channel)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        raw = read_npy(path, "prediction")
    elif suffix == ".npz":
        raw = _npz_array(path)
    else:
        raw = read_depth(path, 1.0, np.float64, what="prediction", min_int_bits=16 if suffix == ".png" else 0)
    raw = np.squeeze(raw) if raw.ndim > 2 else raw
    return _checked(raw, path)


def read_sequence_npz(path: Path, frames: int) -> np.ndarray:
    """One sequence's predictions from one `.npz`: a (T,H,W) array with T = the sequence's frames."""
    pred = _checked(_npz_array(path), path, ndim=3)
    if pred.shape[0] != frames:
        raise BenchmarkError(f"{display(path)}: holds {pred.shape[0]} frames, the sequence has {frames}")
    return pred


def prediction_path(root: Path, sequence: Sequence, index: int, write: bool = False) -> Path:
    """Where frame `index`'s prediction lives under `root`, confined to it (`confine_output` when `write`)."""
    relative = prediction_relpath(sequence.dataset, sequence.frames[index].image).as_posix()
    what = f"{display(sequence.json_path)}: sequence {sequence.name!r} frame {index}: prediction path"
    return (confine_output if write else confine)(root, relative, what, BenchmarkError)


class PredictionSource(Protocol):
    def frame(self, sequence: Sequence, index: int) -> np.ndarray | None:
        """The (H,W) float32 disparity for frame `index` of `sequence`, or None if it does not exist."""


class NpyPredictions:
    """Saved predictions of any model (`--predictions DIR`), found per sequence in the first layout that has them:

    1. per frame, in the published toolkit's layout: `<root>/<dataset>/<image path>` with the image suffix replaced
       by .npy, .npz, .png or .exr (a frame without its file is skipped under the vda protocol, as published);
    2. one `.npz` per sequence: `<root>/<dataset>/<sequence>.npz` or `<root>/<sequence>.npz`, (T,H,W);
    3. one folder per sequence, files in natural order paired with the sequence's frames by position (the CUT3R
       family's `<output>/<sequence>/frame_0000.npy`): `<root>/<dataset>/<sequence>/` or `<root>/<sequence>/`;
       its file count must equal the sequence's frame count.
    A sequence may also go by the family's folder names (`cut3r_splits.prediction_folders`: `balloon2` for
    `rgbd_bonn_balloon2`, `<drive>_02` for a KITTI drive). Any resolution: the protocols resize to the ground truth.
    """

    def __init__(self, root: Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise BenchmarkError(f"{self.root}: predictions directory not found")
        self._key: tuple | None = None
        self._layout: Callable[[int], np.ndarray | None] = lambda index: None

    def frame(self, sequence: Sequence, index: int) -> np.ndarray | None:
        key = (str(sequence.json_path), sequence.name)
        if key != self._key:
            self._layout, self._key = self._find_layout(sequence), key
        return self._layout(index)

    def _frame_file(self, sequence: Sequence, index: int) -> Path | None:
        npy = prediction_path(self.root, sequence, index)
        # anything at the path (a folder, a FIFO, a dangling link) is read and refused in one line, not skipped
        return next((p for p in (npy.with_suffix(s) for s in PREDICTION_SUFFIXES) if os.path.lexists(p)), None)

    def _find_layout(self, sequence: Sequence) -> Callable[[int], np.ndarray | None]:
        count = len(sequence.frames)
        if any(self._frame_file(sequence, i) is not None for i in range(count)):
            return lambda i: None if (p := self._frame_file(sequence, i)) is None else read_prediction(p)
        names = prediction_folders(sequence.dataset, sequence.name)
        places = [(self.root / sequence.dataset, name) for name in names] + [(self.root, name) for name in names]
        what = f"{display(sequence.json_path)}: sequence {sequence.name!r}: predictions"
        for parent, name in places:
            if os.path.lexists(parent / f"{name}.npz"):
                path = confine(self.root, (parent / f"{name}.npz").relative_to(self.root).as_posix(), what,
                               BenchmarkError)
                stack = read_sequence_npz(path, count)
                return lambda i: stack[i]
        for parent, name in places:
            files = list_files(parent / name, PREDICTION_SUFFIXES)
            if files:
                if len(files) != count:
                    raise BenchmarkError(f"{display(parent / name)}: {len(files)} prediction files for the "
                                         f"{count} frames of sequence {sequence.name!r} (paired by position)")
                files = [confine(self.root, f.relative_to(self.root).as_posix(), what, BenchmarkError) for f in files]
                return lambda i: read_prediction(files[i])
        return lambda i: None


def _focal_lengths(sequence: Sequence) -> list[float]:
    """fx of every frame (its JSON `K`), for a canonical-camera model; a frame without K is an error."""
    missing = [f.image for f in sequence.frames if f.K is None]
    if missing:
        raise BenchmarkError(f"{sequence.json_path}: sequence {sequence.name!r}: the model predicts depth for a "
                             f"canonical camera, so every frame needs its K in the JSON (first without: "
                             f"{missing[0]})")
    return [float(np.asarray(f.K, dtype=np.float64)[0, 0]) for f in sequence.frames]


def read_rgb_frames(sequence: Sequence) -> np.ndarray:
    """(L, H, W, 3) uint8 RGB of every frame the JSON lists, all of one size."""
    return np.stack(list(read_frames(sequence.root / frame.image for frame in sequence.frames)))


MANIFEST = "manifest.json"
MANIFEST_KEYS = ("checkpoint_sha256", "encoder", "input_size", "precision", "version")


class SavedManifest(TypedDict, total=False):
    """What a saved manifest may hold (every key optional: an older file's missing key shows as a difference)."""
    format: int
    checkpoint: str | None
    checkpoint_sha256: str | None
    encoder: str
    input_size: int
    precision: str
    version: str


def prediction_manifest(checkpoint: str | Path | None, encoder: str, input_size: int, precision: str) -> dict:
    """What determines the saved predictions: the checkpoint's bytes (sha256), the model and inference settings
    and the code version (a new version may change the numbers)."""
    from .. import __version__
    from ..checkpoints import file_sha256

    return {"format": 1, "checkpoint": None if checkpoint is None else str(checkpoint),
            "checkpoint_sha256": None if checkpoint is None else file_sha256(checkpoint), "encoder": encoder,
            "input_size": int(input_size), "precision": precision, "version": __version__}


def check_saved_predictions(save_dir: Path, manifest: dict) -> None:
    """Write `manifest` into a new predictions folder, or refuse (BenchmarkError) one made differently."""
    save_dir = Path(save_dir)
    path = save_dir / MANIFEST
    if os.path.lexists(path):  # whatever is there is read through trust: a FIFO or a folder is refused, not replaced
        try:
            saved = read_json(path, "prediction manifest", SavedManifest, error=BenchmarkError)
        except ReadError as e:
            raise BenchmarkError(f"{e}; use another --save-predictions folder") from None
        diff = [k for k in MANIFEST_KEYS if saved.get(k) != manifest.get(k)]
        if diff:
            said = ", ".join(f"{k} {saved.get(k)!r} (now {manifest.get(k)!r})" for k in diff)
            raise BenchmarkError(f"{save_dir}: holds predictions made with {said}; they would be scored as this "
                                 "model's: use another --save-predictions folder, or delete this one")
        return
    if save_dir.is_dir() and next(save_dir.rglob("*.npy"), None) is not None:
        raise BenchmarkError(f"{save_dir}: holds predictions but no {MANIFEST}, so nothing says which model made "
                             "them; use another --save-predictions folder (or --predictions to score them)")
    write_json_atomic(path, manifest)


class ModelPredictions:
    """A `PredictionSource` that runs `infer_fn(model, frames, input_size=, device=, precision=)` per sequence.

    infer_fn defaults to `vda_lightning.inference.infer_video_depth` ((L,H,W,3) uint8 RGB → (L,H,W) float32).
    """

    def __init__(self, model, input_size: int = DEFAULT_INPUT_SIZE, device: str = "cpu", precision: str = "fp32",
                 save_dir: Path | None = None, infer_fn: Callable | None = None, checkpoint: str | Path | None = None):
        self.model, self.input_size, self.device, self.precision = model, input_size, device, precision
        self.save_dir = None if save_dir is None else Path(save_dir)
        if self.save_dir is not None:  # before anything is reused or written (module docstring)
            encoder = getattr(getattr(model, "config", None), "encoder", type(model).__name__)
            check_saved_predictions(self.save_dir, prediction_manifest(checkpoint, encoder, input_size, precision))
        self.infer_fn = infer_fn
        self._key: tuple | None = None
        self._depths: list[np.ndarray] = []
        self.resumed = self.inferred = 0

    def frame(self, sequence: Sequence, index: int) -> np.ndarray | None:
        key = (str(sequence.json_path), sequence.name)
        if key != self._key:
            self._depths, self._key = self._predict(sequence), key
        return self._depths[index]

    def _saved_paths(self, sequence: Sequence) -> list[Path] | None:
        if self.save_dir is None:
            return None
        return [prediction_path(self.save_dir, sequence, i, write=True) for i in range(len(sequence.frames))]

    def _predict(self, sequence: Sequence) -> list[np.ndarray]:
        paths = self._saved_paths(sequence)
        if paths and all(os.path.lexists(p) for p in paths):
            self.resumed += 1
            log.info("%s/%s: resumed from %d saved predictions", sequence.dataset, sequence.name, len(paths))
            return [read_prediction(p) for p in paths]
        frames = read_rgb_frames(sequence)
        from ..models.input_contract import DEFAULT_CONTRACT, FrameShapeError

        try:  # before the model runs: a frame it cannot take is one line naming the sequence's first frame
            DEFAULT_CONTRACT.checked_network_size(*frames.shape[1:3], self.input_size, video=True,
                                                  what=str(sequence.root / sequence.frames[0].image))
        except FrameShapeError as e:
            raise BenchmarkError(str(e)) from None
        infer = self.infer_fn
        if infer is None:
            from vda_lightning.inference import infer_video_depth as infer
        from ..inference.runtime import NonFiniteDepthError

        try:
            depths = np.asarray(infer(self.model, frames, input_size=self.input_size, device=self.device,
                                      precision=self.precision), dtype=np.float32)
        except NonFiniteDepthError as e:  # nothing is saved or scored for it
            raise BenchmarkError(f"{sequence.json_path}: sequence {sequence.name!r}: {e}") from None
        if not np.isfinite(depths).all():  # an infer_fn of the caller's that does not check
            raise BenchmarkError(f"{sequence.json_path}: sequence {sequence.name!r}: the model produced NaN/Inf "
                                 "depth")
        if depths.shape != frames.shape[:3]:
            raise RuntimeError(f"{sequence.name}: inference returned {depths.shape} for frames {frames.shape[:3]}")
        self.inferred += 1
        canonical = getattr(getattr(self.model, "config", None), "canonical_focal", None)
        if canonical:  # a canonical-camera metric model: metres for each frame's own focal length
            depths = canonical_depth_to_metres(depths, np.asarray(_focal_lengths(sequence)), canonical)
        if paths:
            for path, depth in zip(paths, depths):
                save_npy_atomic(path, depth)
        return list(depths)
