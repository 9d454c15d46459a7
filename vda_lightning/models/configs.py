"""Per-variant configuration of Video Depth Anything (the `model_configs` table of the published `run.py`)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .input_contract import DEFAULT_CONTRACT, InputContract


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model; stored in every checkpoint we write."""

    encoder: str
    embed_dim: int
    depth: int
    num_heads: int
    layer_idx: tuple[int, int, int, int]
    features: int
    out_channels: tuple[int, int, int, int]
    num_frames: int = 32
    metric: bool = False
    # Metric models trained for a canonical camera (training/metric.py) predict depth * canonical_focal / fx;
    # multiply by fx / canonical_focal for a camera of focal length fx (pixels). None: plain metric depth.
    canonical_focal: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def input_contract(self) -> InputContract:
        """What the network expects as input (patch size, mean / std, the resize rule); the same for every size
        (DINOv2 / Depth Anything V2). `input_contract().to_dict()` is its JSON form."""
        return DEFAULT_CONTRACT

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        d = dict(d)
        d["layer_idx"] = tuple(d["layer_idx"])
        d["out_channels"] = tuple(d["out_channels"])
        return cls(**d)


MODEL_CONFIGS: dict[str, ModelConfig] = {
    "vits": ModelConfig("vits", 384, 12, 6, (2, 5, 8, 11), 64, (48, 96, 192, 384)),
    "vitb": ModelConfig("vitb", 768, 12, 12, (2, 5, 8, 11), 128, (96, 192, 384, 768)),
    "vitl": ModelConfig("vitl", 1024, 24, 16, (4, 11, 17, 23), 256, (256, 512, 1024, 1024)),
    # Not published: a ViT-Ti/14-sized model for CPU tests and the quick start (same code paths, ~3.9M params).
    "vitt": ModelConfig("vitt", 192, 4, 3, (0, 1, 2, 3), 32, (32, 64, 96, 192)),
}


def canonical_depth_to_metres(depth, fx, canonical_focal: float | None):
    """Depth a canonical-camera model predicted (`ModelConfig.canonical_focal`) in metres for a camera of focal
    length `fx` (pixels of the frames the depth map has): depth * fx / canonical_focal. The one place this is
    written; training validation, `vda infer`, `vda eval` and `infer_video` all call it.

    `depth`: a numpy array or a torch tensor (..., H, W); `fx`: a number, or one per leading item of `depth`
    (per sample or per frame), as numbers, an array or a tensor. The factor is computed in float64 on the host and
    multiplied in `depth`'s dtype, so numpy and torch callers get the same numbers bit for bit.
    `canonical_focal` None: the depth is returned as it is (a plain metric or relative model)."""
    if canonical_focal is None:
        return depth
    if hasattr(depth, "detach"):  # a torch tensor (torch is imported only then: this module stays torch-free)
        import torch

        fx = torch.as_tensor(fx).detach().cpu().to(torch.float64)
        scale = (fx / canonical_focal).to(device=depth.device, dtype=depth.dtype)
    else:
        scale = np.asarray(np.asarray(fx, dtype=np.float64) / canonical_focal, dtype=depth.dtype)
    if getattr(scale, "ndim", 0):  # one factor per leading item: broadcast over the rest
        scale = scale.reshape(tuple(scale.shape) + (1,) * (depth.ndim - scale.ndim))
    return depth * scale


def get_config(encoder: str, metric: bool = False) -> ModelConfig:
    if encoder not in MODEL_CONFIGS:
        raise ValueError(f"unknown encoder {encoder!r}; choose one of {sorted(MODEL_CONFIGS)}")
    cfg = MODEL_CONFIGS[encoder]
    return ModelConfig(**{**cfg.to_dict(), "metric": bool(metric)})
