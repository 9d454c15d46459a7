"""Dynamic Replica (Karaev et al., CVPR 2023, arXiv 2305.02296), as extracted by the official download script.

Conventions, from the official loader (facebookresearch/dynamic_stereo `datasets/dynamic_stereo_datasets.py`:
`_load_16big_png_depth`, `_get_pytorch3d_camera`), PyTorch3D's camera docs (`renderer/cameras.py`) and the
CUT3R `preprocess_dynamic_replica.py` converter:
  * index: `frame_annotations_<split>.jgz` (gzipped JSON list of Implicitron FrameAnnotations) in ROOT/<split>/
    or ROOT/; its image/depth paths are relative to ROOT/<split>/;
  * depth PNG: 16 bits that ARE a float16 (metres), times `depth.scale_adjustment`; < 1e-5 is invalid;
  * `viewpoint`: `focal_length`, `principal_point` in NDC ("ndc_isotropic": both axes scaled by half the shorter
    side; "ndc_norm_image_bounds": each by its own half size; +x left, +y up, +-1 at the image edges) and the
    PyTorch3D world-to-view `R`, `T` (row vectors X_view = X_world R + T; camera +X left, +Y up, +Z forward).
One sequence per (sequence_name, camera_name), frames ordered by frame_number.
"""
from __future__ import annotations

import gzip
import json
import os
from collections import defaultdict

import numpy as np

from ..manifests import SequenceSpec
from .base import Converter, keep
from .geometry import ndc_to_pixel_intrinsics, pytorch3d_to_opencv_c2w
from .readers import Float16PNGDepth


def add_arguments(p) -> None:
    p.add_argument("root")
    p.add_argument("--splits", nargs="*", default=["train"], help="train, valid, test (default: train)")
    p.add_argument("--cameras", nargs="*", default=["left"], choices=["left", "right"])
    p.add_argument("--sequences", nargs="*", default=None, help="sequence_name values (default: all)")


def load_annotations(root: str, split: str) -> tuple[list[dict], str]:
    for path in (os.path.join(root, split, f"frame_annotations_{split}.jgz"),
                 os.path.join(root, f"frame_annotations_{split}.jgz")):
        if os.path.isfile(path):
            try:
                with gzip.open(path, "rt", encoding="utf8") as f:
                    doc = json.load(f)
            except (OSError, ValueError, EOFError) as exn:
                raise ValueError(f"{path}: not a gzipped JSON annotation list ({exn})") from None
            if not isinstance(doc, list):
                raise ValueError(f"{path}: expected a JSON list of frame annotations")
            return doc, path
    raise ValueError(f"{root}: no frame_annotations_{split}.jgz in {root}/{split}/ or {root}/")


def read_sequences(a) -> list[SequenceSpec]:
    root = os.path.abspath(a.root)
    out = []
    for split in a.splits:
        annots, where = load_annotations(root, split)
        base = os.path.join(root, split)
        groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
        for i, fa in enumerate(annots):
            try:
                groups[(fa["sequence_name"], fa.get("camera_name") or "left")].append(fa)
            except (KeyError, TypeError):
                raise ValueError(f"{where}: annotation {i} has no sequence_name") from None
        for (seq, cam), fas in sorted(groups.items()):
            if cam not in a.cameras or not keep(seq, a.sequences):
                continue
            fas.sort(key=lambda fa: int(fa["frame_number"]))
            try:
                frames = [os.path.join(base, fa["image"]["path"]) for fa in fas]
                depths = [os.path.join(base, fa["depth"]["path"]) for fa in fas]
                scale = tuple(float(fa["depth"].get("scale_adjustment") or 1.0) for fa in fas)
                K, poses = [], []
                for fa in fas:
                    vp, (h, w) = fa["viewpoint"], fa["image"]["size"]
                    K.append(ndc_to_pixel_intrinsics(vp["focal_length"], vp["principal_point"], int(h), int(w),
                                                     vp.get("intrinsics_format", "ndc_norm_image_bounds")))
                    poses.append(pytorch3d_to_opencv_c2w(vp["R"], vp["T"]))
            except (KeyError, TypeError, ValueError) as exn:
                raise ValueError(f"{where}: sequence {seq} ({cam}): bad annotation ({exn!r})") from None
            out.append(SequenceSpec("dynamic_replica", f"{split}/{seq}/{cam}", frames, depths, K=np.stack(K),
                                    poses=np.stack(poses), reader=Float16PNGDepth(scale)).check())
    if not out:
        raise ValueError(f"{root}: no annotated sequences for splits {a.splits}, cameras {a.cameras}")
    return out


CONVERTER = Converter(
    "dynamic-replica", "Dynamic Replica (frame_annotations_<split>.jgz + images/, depths/ float16 PNG)",
    "ROOT/<split>/frame_annotations_<split>.jgz (or ROOT/frame_annotations_<split>.jgz) indexing\n"
    "ROOT/<split>/<seq>/{images,depths}/*.png: depth PNG bits are float16 metres, NDC (PyTorch3D) intrinsics\n"
    "and PyTorch3D world-to-view R, T converted to pixel K and OpenCV camera-to-world.",
    add_arguments, read_sequences)
