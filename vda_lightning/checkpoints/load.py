"""`load_model`: read → adapt → build (the contract is in the package docstring)."""
from __future__ import annotations

import os
from pathlib import Path

import torch.nn as nn

from ..models import DepthAnythingV2, VideoDepthAnything
from . import adapt
from .build import build_model, check_state_dict, describe, model_config
from .read import CheckpointError, RawCheckpoint, file_sha256, read


def _published_layout(raw: RawCheckpoint) -> dict:
    """Any file's model tensors in the published layout, float32, the referenced encoder filled in."""
    obj = raw.obj
    if isinstance(obj.get("state_dict"), dict):  # Lightning checkpoint
        sd, info = adapt.lightning_checkpoint(obj, raw.path)
    else:
        sd, info = obj, {}
    sd = adapt.published_vda(adapt.dataparallel_prefix(sd))
    if not sd:
        raise CheckpointError(f"{raw.path}: holds no tensors")
    if info.get("encoder_source") and not any(k.startswith("pretrained.") for k in sd):
        sd.update(_referenced_encoder(info["encoder_source"], raw.path))
    return sd


def _referenced_encoder(source: dict, ckpt: Path) -> dict:
    enc_path = Path(source["path"])
    if not enc_path.is_file():
        raise CheckpointError(
            f"{ckpt}: its frozen encoder comes from {enc_path}, which is missing; restore that file or train "
            "with the encoder embedded"
        )
    if source.get("sha256") and file_sha256(enc_path) != source["sha256"]:
        raise CheckpointError(f"{ckpt}: the referenced encoder file {enc_path} changed (sha256 mismatch)")
    return {k: v for k, v in _published_layout(read(enc_path)).items() if k.startswith("pretrained.")}


def load_model(
    path: str | os.PathLike,
    encoder: str | None = None,
    metric: bool | None = None,
    expect: str = "any",
) -> nn.Module:
    """Load any supported checkpoint (see `vda_lightning.checkpoints`) as a model in eval mode (float32, CPU).

    Video checkpoints give a `VideoDepthAnything`; Depth Anything V2 ones one whose fresh temporal modules make
    it equal the image model per frame. `encoder` (vits/vitb/vitl/vitt) is inferred from tensor shapes when None;
    `metric` from the file when None. `expect="video"` refuses image checkpoints, `expect="image"` returns the
    `DepthAnythingV2` image model (from either kind of file).
    """
    if expect not in ("any", "video", "image"):
        raise ValueError(f"expect must be 'any', 'video' or 'image', got {expect!r}")
    raw = read(path)
    sd = _published_layout(raw)
    config = model_config(raw, sd, encoder, metric)
    image_file = adapt.is_image_state_dict(sd)
    if expect == "image":
        return build_model(DepthAnythingV2, config, sd if image_file else adapt.video_to_image(sd), raw.path)
    if not image_file:
        return build_model(VideoDepthAnything, config, sd, raw.path)
    video = VideoDepthAnything(config)
    if expect == "video":  # the report names the temporal modules the file lacks
        check_state_dict(video, sd, raw.path, describe(VideoDepthAnything, config))
    fresh = video.state_dict()
    check_state_dict(adapt.video_to_image(fresh), sd, raw.path, describe(DepthAnythingV2, config))
    return build_model(VideoDepthAnything, config, adapt.dav2_to_video(sd, fresh), raw.path, video)


def load_image_model(path: str | os.PathLike, encoder: str | None = None) -> DepthAnythingV2:
    """A Depth Anything V2 image model (the teacher) from a DAv2 or VDA checkpoint."""
    return load_model(path, encoder=encoder, expect="image")  # type: ignore[return-value]
