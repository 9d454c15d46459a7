"""Save: the full model in the published key layout, atomically, with its config beside it."""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.nn as nn

from ..io import atomic_path, write_json_atomic
from ..models import ModelConfig


def published_state_dict(model: nn.Module) -> dict:
    """State dict in the published layout (VDA: pretrained.* + head.*; DAv2: pretrained.* + depth_head.*)."""
    return {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}


def save_model(model: nn.Module, path: str | os.PathLike) -> Path:
    """Write the full model in the published key layout, atomically.

    `.pth`: a plain state dict of float32 tensors, loadable strictly by the published code; the config (encoder,
    relative vs metric) goes to a `<file>.json` sidecar. `.safetensors`: the config goes into the metadata.
    """
    path = Path(path)
    config: ModelConfig = model.config  # type: ignore[assignment]
    sd = published_state_dict(model)
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        meta = {"format": "pt", "encoder": config.encoder, "metric": str(config.metric).lower(),
                "config": json.dumps(config.to_dict())}
        with atomic_path(path) as tmp:
            save_file(sd, str(tmp), metadata=meta)
    else:
        write_json_atomic(path.with_name(path.name + ".json"), config.to_dict())
        with atomic_path(path) as tmp:
            torch.save(sd, str(tmp))
    return path
