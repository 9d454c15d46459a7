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

The index is read through the trust boundary: at most ANNOTATION_BYTES decompressed (a gzip bomb stops there),
standard JSON, every annotation checked against `annotation_schema()` before use, and every image/depth path
confined to ROOT/<split>/ (`trust.confine`: no absolute path, no `..` out).

Plausible depth (`PLAUSIBLE_DEPTH`, the unit check before writing): Dynamic Replica renders people and animals
in the Replica indoor scans (rooms, apartments, offices), so the median valid depth of a few frames lies within
0.2-20 m. The layout fixes the unit (float16 metres).
"""
from __future__ import annotations

import functools
import gzip
import os
import zlib
from collections import defaultdict

import numpy as np

from ...trust import ReadError, confine, display, max_json_bytes, parse_json, regular_file, validate
from ..manifests import SequenceSpec
from .base import Converter, keep
from .geometry import ndc_to_pixel_intrinsics, pytorch3d_to_opencv_c2w
from .readers import Float16PNGDepth

PLAUSIBLE_DEPTH = (0.2, 20.0)   # metres, median of valid depth (see the module docstring)


def annotation_bytes() -> int:
    """Decompressed size allowed for one frame_annotations_<split>.jgz: 8 x VDA_MAX_JSON_BYTES (512 MiB by
    default; the train split's list of ~290k annotations is a few hundred MB of JSON)."""
    return 8 * max_json_bytes()


@functools.lru_cache(maxsize=1)
def annotation_schema():
    """The pydantic model of the parts of an Implicitron FrameAnnotation we use (others are ignored)."""
    from typing import Annotated, Literal

    from pydantic import BaseModel, ConfigDict, Field

    finite = Annotated[float, Field(allow_inf_nan=False)]
    row3 = Annotated[list[finite], Field(min_length=3, max_length=3)]

    class Loose(BaseModel):
        model_config = ConfigDict(extra="ignore")

    class Image(Loose):
        path: Annotated[str, Field(min_length=1)]
        size: Annotated[list[Annotated[int, Field(ge=1, le=1 << 16)]], Field(min_length=2, max_length=2)]

    class Depth(Loose):
        path: Annotated[str, Field(min_length=1)]
        scale_adjustment: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None

    class Viewpoint(Loose):
        R: Annotated[list[row3], Field(min_length=3, max_length=3)]
        T: row3
        focal_length: Annotated[list[Annotated[float, Field(gt=0, allow_inf_nan=False)]],
                                Field(min_length=1, max_length=2)] | Annotated[float, Field(gt=0, allow_inf_nan=False)]
        principal_point: Annotated[list[finite], Field(min_length=2, max_length=2)]
        intrinsics_format: Literal["ndc_norm_image_bounds", "ndc_isotropic"] = "ndc_norm_image_bounds"

    class FrameAnnotation(Loose):
        sequence_name: Annotated[str, Field(min_length=1)]
        frame_number: Annotated[int, Field(ge=0)]
        camera_name: str | None = None
        image: Image
        depth: Depth
        viewpoint: Viewpoint

    return list[FrameAnnotation]


def _gunzip_capped(path: str, cap: int) -> bytes:
    regular_file(path, "annotation file")
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read(cap + 1)
    except (OSError, EOFError, zlib.error) as exn:
        raise ReadError(f"{display(path)}: not a gzipped annotation file ({' '.join(str(exn).split())[:120]})") \
            from None
    if len(raw) > cap:
        raise ReadError(f"{display(path)}: more than {cap:,} bytes of JSON once decompressed (8 x VDA_MAX_JSON_BYTES)")
    return raw


def add_arguments(p) -> None:
    p.add_argument("root")
    p.add_argument("--splits", nargs="*", default=["train"], help="train, valid, test (default: train)")
    p.add_argument("--cameras", nargs="*", default=["left"], choices=["left", "right"])
    p.add_argument("--sequences", nargs="*", default=None, help="sequence_name values (default: all)")


def load_annotations(root: str, split: str) -> tuple[list, str]:
    """The split's frame annotations (checked against `annotation_schema()`) and the file they come from."""
    for path in (os.path.join(root, split, f"frame_annotations_{split}.jgz"),
                 os.path.join(root, f"frame_annotations_{split}.jgz")):
        if os.path.isfile(path):
            cap = annotation_bytes()
            doc = parse_json(_gunzip_capped(path, cap), display(path), max_bytes=cap)
            if not isinstance(doc, list):
                raise ReadError(f"{display(path)}: expected a JSON list of frame annotations")
            return validate(annotation_schema(), doc, f"{display(path)}: annotation"), path
    raise ReadError(f"{display(root)}: no frame_annotations_{split}.jgz in {display(root)}/{split}/ or "
                    f"{display(root)}/")


def read_sequences(a) -> list[SequenceSpec]:
    root = os.path.abspath(a.root)
    out = []
    for split in a.splits:
        annots, where = load_annotations(root, split)
        base = os.path.join(root, split)
        groups: dict[tuple[str, str], list] = defaultdict(list)
        for i, fa in enumerate(annots):
            groups[(fa.sequence_name, fa.camera_name or "left")].append((i, fa))
        for (seq, cam), fas in sorted(groups.items()):
            if cam not in a.cameras or not keep(seq, a.sequences):
                continue
            fas.sort(key=lambda item: item[1].frame_number)
            source = f"{display(where)} ({seq}, {cam})"
            frames = [str(confine(base, fa.image.path, f"{display(where)}: annotation {i}: image.path"))
                      for i, fa in fas]
            depths = [str(confine(base, fa.depth.path, f"{display(where)}: annotation {i}: depth.path"))
                      for i, fa in fas]
            scale = tuple(fa.depth.scale_adjustment or 1.0 for _, fa in fas)
            K, poses = [], []
            for _, fa in fas:
                vp, (h, w) = fa.viewpoint, fa.image.size
                K.append(ndc_to_pixel_intrinsics(vp.focal_length, vp.principal_point, h, w, vp.intrinsics_format))
                poses.append(pytorch3d_to_opencv_c2w(vp.R, vp.T))
            out.append(SequenceSpec("dynamic_replica", f"{split}/{seq}/{cam}", frames, depths, K=np.stack(K),
                                    poses=np.stack(poses), reader=Float16PNGDepth(scale), K_source=source,
                                    poses_source=source).check())
    if not out:
        raise ReadError(f"{display(root)}: no annotated sequences for splits {a.splits}, cameras {a.cameras}")
    return out


CONVERTER = Converter(
    "dynamic-replica", "Dynamic Replica (frame_annotations_<split>.jgz + images/, depths/ float16 PNG)",
    "ROOT/<split>/frame_annotations_<split>.jgz (or ROOT/frame_annotations_<split>.jgz) indexing\n"
    "ROOT/<split>/<seq>/{images,depths}/*.png: depth PNG bits are float16 metres, NDC (PyTorch3D) intrinsics\n"
    "and PyTorch3D world-to-view R, T converted to pixel K and OpenCV camera-to-world.",
    add_arguments, read_sequences, plausible_depth=PLAUSIBLE_DEPTH)
