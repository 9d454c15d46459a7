"""Plain `nn.Module`s: the DINOv2 encoder, the (spatio-temporal) DPT head, VDA and DAv2.

The registry (`MODEL_CONFIGS`, `get_config`) and the input contract import without torch; the modules themselves
(torch, timm) are imported on first use, so command-line help and configs stay fast.
"""
from __future__ import annotations

import importlib

from .configs import MODEL_CONFIGS, ModelConfig, get_config
from .input_contract import DEFAULT_CONTRACT, InputContract

_LAZY = {
    "DepthAnythingV2": ".depth_anything",
    "VideoDepthAnything": ".depth_anything",
    "build_image_model": ".depth_anything",
    "build_video_model": ".depth_anything",
    "video_model_from_image_model": ".depth_anything",
    "DinoV2Encoder": ".encoder",
    "interpolate_pos_embed": ".encoder",
}

__all__ = ["MODEL_CONFIGS", "ModelConfig", "get_config", "DEFAULT_CONTRACT", "InputContract", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
