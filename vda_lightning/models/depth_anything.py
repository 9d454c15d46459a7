"""Video Depth Anything and Depth Anything V2 (the image model), built by name, and the conversions between their
key layouts (DAv2 image <-> video, the DAv2 metric head folded for the ReLU head)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .configs import ModelConfig, get_config
from .dpt import DPTHead
from .encoder import DinoV2Encoder


def build_encoder(config: ModelConfig) -> nn.Module:
    """The published DINOv2 encoder for a registry size; a timm backbone (`timm_encoder.py`) for a timm name."""
    if config.is_timm:
        from .timm_encoder import TimmEncoder

        return TimmEncoder(config)
    return DinoV2Encoder(config.embed_dim, config.depth, config.num_heads, config.layer_idx)


class VideoDepthAnything(nn.Module):
    """Frozen-encoder + spatio-temporal DPT head. Keys: `pretrained.*`, `head.*` (published layout).

    forward: (B, T, 3, H, W) ImageNet-normalised, H and W multiples of the patch (14; 16 for DINOv3), T <= 32
             -> (B, T, H, W) non-negative relative disparity (metric depth for metric checkpoints).
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.pretrained = build_encoder(config)
        self.head = DPTHead(config.embed_dim, config.features, config.out_channels, temporal=True,
                            patch_size=config.patch_size)

    def forward_features(self, x: torch.Tensor):
        """Encoder features of a batch of frames (N, 3, H, W): 4 (tokens, cls) pairs."""
        return self.pretrained.get_intermediate_layers(x)

    def forward_depth(self, features, height: int, width: int, batch: int, num_frames: int, cached=None,
                      outputs: int | None = None):
        """Head on precomputed features of B*T frames -> ((B, T, H, W), temporal cache states); with `outputs`,
        the maps of each clip's first `outputs` frames only, (B, outputs, H, W) (`DPTHead.forward`)."""
        patch = self.config.patch_size
        depth, states = self.head(features, height // patch, width // patch, num_frames, cached, outputs)
        depth = F.relu(depth)  # the published resize to (H, W) here is an exact no-op and is skipped
        return depth.squeeze(1).unflatten(0, (batch, -1)), states

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
    With `max_depth`, the metric DAv2 head (published `metric_depth/depth_anything_v2/dpt.py`): the last activation
    is a sigmoid and the output sigmoid(z) * max_depth metres (same keys: activations hold no weights).
    """

    def __init__(self, config: ModelConfig, max_depth: float | None = None):
        super().__init__()
        self.config = config
        self.max_depth = max_depth
        self.pretrained = build_encoder(config)
        self.depth_head = DPTHead(config.embed_dim, config.features, config.out_channels, temporal=False,
                                  patch_size=config.patch_size)
        if max_depth is not None:
            self.depth_head.scratch.output_conv2[3] = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        features = self.pretrained.get_intermediate_layers(x)
        patch = self.config.patch_size
        depth, _ = self.depth_head(features, h // patch, w // patch)
        if self.max_depth is not None:
            return (depth * self.max_depth).squeeze(1)
        return F.relu(depth).squeeze(1)


def build_video_model(encoder: str = "vits", metric: bool = False, **config) -> VideoDepthAnything:
    """`build_video_model('vitl')` or `build_video_model('vit_small_patch16_dinov3')` — random weights; see
    `vda_lightning.load_model` for checkpoints. `config`: `get_config`'s keywords (a timm backbone's taps)."""
    return VideoDepthAnything(get_config(encoder, metric, **config))


def build_image_model(encoder: str = "vits", **config) -> DepthAnythingV2:
    return DepthAnythingV2(get_config(encoder, **config))


def video_model_from_image_model(image_model: DepthAnythingV2) -> VideoDepthAnything:
    """The paper's initialisation: DAv2 weights, fresh temporal modules with zero output projections
    (the key mapping is `dav2_to_video`, below)."""
    video = VideoDepthAnything(image_model.config)
    video.load_state_dict(dav2_to_video(image_model.state_dict(), video.state_dict()), strict=True)
    return video


# -- this family's key layouts (timm keeps each family's checkpoint filter beside its model, so do we): the image
# model keeps its head under `depth_head.*`, the video model under `head.*` with the temporal layers added.
IMAGE_HEAD, VIDEO_HEAD = "depth_head.", "head."
TEMPORAL = ".motion_modules."  # the spatio-temporal head's temporal layers (head.motion_modules.{0..3}.*)


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
