"""Video Depth Anything and Depth Anything V2 (the image model), built by name."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .configs import ModelConfig, get_config
from .dpt import DPTHead
from .encoder import PATCH, DinoV2Encoder


class VideoDepthAnything(nn.Module):
    """Frozen-encoder + spatio-temporal DPT head. Keys: `pretrained.*`, `head.*` (published layout).

    forward: (B, T, 3, H, W) ImageNet-normalised, H and W multiples of 14, T <= 32
             -> (B, T, H, W) non-negative relative disparity (metric depth for metric checkpoints).
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.pretrained = DinoV2Encoder(config.embed_dim, config.depth, config.num_heads, config.layer_idx)
        self.head = DPTHead(config.embed_dim, config.features, config.out_channels, temporal=True)

    def forward_features(self, x: torch.Tensor):
        """Encoder features of a batch of frames (N, 3, H, W): 4 (tokens, cls) pairs."""
        return self.pretrained.get_intermediate_layers(x)

    def forward_depth(self, features, height: int, width: int, batch: int, num_frames: int, cached=None):
        """Head on precomputed features of B*T frames -> ((B, T, H, W), temporal cache states)."""
        depth, states = self.head(features, height // PATCH, width // PATCH, num_frames, cached)
        depth = F.relu(depth)  # the published resize to (H, W) here is an exact no-op and is skipped
        return depth.squeeze(1).unflatten(0, (batch, num_frames)), states

    def forward_step(self, x: torch.Tensor, height: int, width: int, cached=None):
        """One online step (published `video_depth_stream.py::infer_video_depth_one`): B new frames (B, 3, H, W)
        attending over the cached pre-PE states of earlier frames -> ((B, 1, H, W), the new frames' 8 states)."""
        return self.forward_depth(self.forward_features(x), height, width, x.shape[0], 1, cached)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c, h, w = x.shape
        features = self.forward_features(x.flatten(0, 1))
        return self.forward_depth(features, h, w, b, t)[0]


class DepthAnythingV2(nn.Module):
    """The image model (encoder + DPT head); keys `pretrained.*`, `depth_head.*` as DAv2 publishes them.

    forward: (N, 3, H, W) -> (N, H, W) relative disparity. Serves as the teacher and as the start of training.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.pretrained = DinoV2Encoder(config.embed_dim, config.depth, config.num_heads, config.layer_idx)
        self.depth_head = DPTHead(config.embed_dim, config.features, config.out_channels, temporal=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        features = self.pretrained.get_intermediate_layers(x)
        depth, _ = self.depth_head(features, h // PATCH, w // PATCH)
        return F.relu(depth).squeeze(1)


def build_video_model(encoder: str = "vits", metric: bool = False) -> VideoDepthAnything:
    """`build_video_model('vitl')` — random weights; see `vda_lightning.load_model` for checkpoints."""
    return VideoDepthAnything(get_config(encoder, metric))


def build_image_model(encoder: str = "vits") -> DepthAnythingV2:
    return DepthAnythingV2(get_config(encoder))


def video_model_from_image_model(image_model: DepthAnythingV2) -> VideoDepthAnything:
    """The paper's initialisation: DAv2 weights, fresh temporal modules with zero output projections
    (the key mapping is `checkpoints.dav2_to_video`)."""
    from ..checkpoints.adapt import dav2_to_video  # checkpoints builds on models: imported on use

    video = VideoDepthAnything(image_model.config)
    video.load_state_dict(dav2_to_video(image_model.state_dict(), video.state_dict()), strict=True)
    return video
