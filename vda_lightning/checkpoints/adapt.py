"""Adapt: small named functions that take what a file holds to the model's own key layout (state dicts in, state
dicts out): a Lightning checkpoint's module prefix, a DataParallel prefix, a published file's half floats.

Our modules use the published key names, so the published Video Depth Anything layout needs no renaming. The
conversions between the family's own layouts (Depth Anything V2 image <-> video, the DAv2 metric head) live beside
the models, in `models/depth_anything.py`.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..trust import display
from .read import CheckpointError


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
