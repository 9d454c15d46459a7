"""`RunnerModel`: what the inference runners (`inference/runners.py`) call on a model. `VideoDepthAnything` has
this shape; `deploy/ort_backend.OnnxRuntimeModel` declares it, so that both runners run unchanged on exported
graphs. It lives on the models' floor, below deploy/ and inference/, so that both can name it (torch-free).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch

    from .configs import ModelConfig


@runtime_checkable
class RunnerModel(Protocol):
    """Tensors in, tensors out; sizes are the network's (multiples of the patch, 14)."""

    config: ModelConfig

    def to(self, device) -> RunnerModel: ...

    def eval(self) -> RunnerModel: ...

    def forward_features(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Offline: (N, 3, H, W) frames -> the encoder's four (tokens, cls) pairs."""
        ...

    def forward_depth(self, features, height: int, width: int, batch: int, num_frames: int,
                      cached=None, outputs: int | None = None) -> tuple[torch.Tensor, list]:
        """Offline: the head on batch * num_frames frames' features -> ((B, T, H, W) depth, temporal states);
        `outputs`: the maps of each clip's first `outputs` frames only, (B, outputs, H, W)."""
        ...

    def forward_step(self, x: torch.Tensor, height: int, width: int,
                     cached=None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Streaming: one frame per clip and the cached states (None first) -> ((B, 1, H, W) depth, new states)."""
        ...
