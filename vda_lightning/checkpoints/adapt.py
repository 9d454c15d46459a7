"""Adapt: small named functions that turn one key layout into another (state dicts in, state dicts out).

Our modules use the published key names, so the published Video Depth Anything layout needs no renaming; the
other layouts are brought to it (or, for the teacher, to the Depth Anything V2 image layout).
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..trust import display
from .read import CheckpointError

IMAGE_HEAD, VIDEO_HEAD = "depth_head.", "head."
TEMPORAL = ".motion_modules."  # the spatio-temporal head's temporal layers (head.motion_modules.{0..3}.*)


def lightning_checkpoint(obj: dict, path: Path, info: dict | None = None) -> tuple[dict, dict]:
    """A `vda-fit` Lightning checkpoint → (model state dict without the module prefix, its "vda" info).

    `info`: the "vda" entry as `read` checked it (metadata.LightningInfo); when None it is checked here."""
    if info is None:
        from .metadata import lightning_info

        info = lightning_info(obj["vda"], path, CheckpointError) if obj.get("vda") is not None else {}
    prefix = info.get("prefix", "model.")
    sd = {k[len(prefix):]: v for k, v in obj["state_dict"].items() if isinstance(k, str) and k.startswith(prefix)}
    if not sd:
        raise CheckpointError(f"{display(path)}: Lightning checkpoint without model weights under {prefix!r}")
    return sd, info


def dataparallel_prefix(sd: dict) -> dict:
    """Drop the `module.` prefix that `DataParallel` / DDP wrappers add to every key."""
    if not any(isinstance(k, str) and k.startswith("module.") for k in sd):
        return sd
    return {k.removeprefix("module."): v for k, v in sd.items()}


def published_vda(sd: dict) -> dict:
    """A published Video Depth Anything state dict: the tensors only, floats as float32 (half-precision files).

    The key layout is already ours (`pretrained.*`, `head.*`; Depth Anything V2 files: `depth_head.*`).
    """
    return {k: (v.float() if v.is_floating_point() else v) for k, v in sd.items() if isinstance(v, torch.Tensor)}


def is_image_state_dict(sd: dict) -> bool:
    """A Depth Anything V2 image checkpoint: `depth_head.*` and no video `head.*`."""
    return any(k.startswith(IMAGE_HEAD) for k in sd) and not any(k.startswith(VIDEO_HEAD) for k in sd)


def dav2_to_video(sd: dict, fresh_video: dict) -> dict:
    """Depth Anything V2 (`depth_head.*`) → Video Depth Anything (`head.*`): the DPT weights renamed; the temporal
    layers the image model lacks taken from `fresh_video` (a newly built video model's state dict, whose
    temporal output projections are zero: the video model then equals the image model frame by frame)."""
    out = {(VIDEO_HEAD + k[len(IMAGE_HEAD):] if k.startswith(IMAGE_HEAD) else k): v for k, v in sd.items()}
    out.update({k: v for k, v in fresh_video.items() if TEMPORAL in k and k not in out})
    return out


def video_to_image(sd: dict) -> dict:
    """Video Depth Anything → Depth Anything V2 image layout: `head.*` → `depth_head.*`, temporal layers dropped."""
    return {(IMAGE_HEAD + k[len(VIDEO_HEAD):] if k.startswith(VIDEO_HEAD) else k): v for k, v in sd.items()
            if TEMPORAL not in k}


OUTPUT_CONV = "scratch.output_conv2.2."  # the head's last 1x1 convolution (32 -> 1 channels)
SIGMOID_ANCHORS = (1 / 40, 1 / 2)  # fractions of max_depth where the folded ReLU head equals the sigmoid head


def sigmoid_head_to_relu(sd: dict, max_depth: float, prefix: str = VIDEO_HEAD) -> dict:
    """A Depth Anything V2 *metric* head (published `metric_depth/depth_anything_v2/dpt.py`: the last convolution's
    output z goes through `sigmoid(z) * max_depth`) re-parameterised for the Video Depth Anything head, whose output
    is `relu(z)` (reference: the metric and relative VDA networks are the same architecture).

    No ReLU head equals the sigmoid one, and copying the weights unchanged would start fine-tuning from
    relu(z) = 0 almost everywhere (z < 0 for every depth under max_depth / 2): a dead output with no gradient.
    So the last 1x1 convolution is composed with the affine map a*z + c that equals max_depth * sigmoid(z) at
    1/40 and 1/2 of max_depth (2 m and 40 m for an 80 m model): the folded head starts monotone in the DAv2
    prediction, exact at those two depths, within a factor ~2.3 between them (the sigmoid's tail is convex), and
    at 0 below ~1/50 of max_depth. Every other tensor is copied unchanged; fine-tuning re-learns the output scale.
    """
    lo, hi = (max_depth * f for f in SIGMOID_ANCHORS)
    z_lo, z_hi = (torch.logit(torch.tensor(f, dtype=torch.float64)) for f in SIGMOID_ANCHORS)
    a = (hi - lo) / (z_hi - z_lo)
    c = lo - a * z_lo
    w, b = sd[prefix + OUTPUT_CONV + "weight"], sd[prefix + OUTPUT_CONV + "bias"]
    out = dict(sd)
    out[prefix + OUTPUT_CONV + "weight"] = (w.double() * a).to(w.dtype)
    out[prefix + OUTPUT_CONV + "bias"] = (b.double() * a + c).to(b.dtype)
    return out
