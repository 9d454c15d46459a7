"""DPT head of Depth Anything V2 and its spatio-temporal variant (published `dpt.py`, `dpt_temporal.py`,
`util/blocks.py`)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from .input_contract import PATCH_SIZE
from .temporal import TemporalModule

MICRO_BATCH = 4  # frames per chunk in the high-resolution tail (memory only; per-frame ops)


def nhwc(setting: bool | None, x: torch.Tensor) -> bool:
    """Whether the head keeps its feature maps channels-last (NHWC): the lever's setting (models/speed.py), or by
    default (None) for inference on the CPU, where oneDNN's convolutions run NHWC faster whatever the weights'
    layout (the vits head 5.1 -> 3.4 s per 32-frame window at 280x504, 17 -> 13 s at 518x924; issue 28). Same
    operations, another summation order (~1e-6 relative in fp32). Training (grad enabled) keeps NCHW unless the
    lever says otherwise: its gradients' layout is what DDP's buckets were built for."""
    if setting is not None:
        return setting
    return x.device.type == "cpu" and not torch.is_grad_enabled()


def _resize(x: torch.Tensor, size=None, scale_factor=None, channels_last: bool = False) -> torch.Tensor:
    """Bilinear, align_corners=True (the published head); NHWC in and out when channels_last."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return F.interpolate(x.contiguous(memory_format=fmt), size=size, scale_factor=scale_factor, mode="bilinear",
                         align_corners=True)


class ResidualConvUnit(nn.Module):
    def __init__(self, features: int):
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)

    def forward(self, x):
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class FeatureFusionBlock(nn.Module):
    def __init__(self, features: int):
        super().__init__()
        self.resConfUnit1 = ResidualConvUnit(features)
        self.resConfUnit2 = ResidualConvUnit(features)
        self.out_conv = nn.Conv2d(features, features, 1)
        self.channels_last: bool | None = None  # `nhwc`; models/speed.py sets it

    def forward(self, x, skip=None, size=None):
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        if size is not None:
            x = _resize(x, size=size, channels_last=nhwc(self.channels_last, x))
        else:
            x = _resize(x, scale_factor=2, channels_last=nhwc(self.channels_last, x))
        return self.out_conv(x)


class _Scratch(nn.Module):
    """Container that reproduces the published `scratch.*` key names."""

    def __init__(self, in_channels: Sequence[int], features: int):
        super().__init__()
        for i, c in enumerate(in_channels, start=1):
            setattr(self, f"layer{i}_rn", nn.Conv2d(c, features, 3, padding=1, bias=False))
        for i in range(1, 5):
            setattr(self, f"refinenet{i}", FeatureFusionBlock(features))
        half = features // 2
        self.output_conv1 = nn.Conv2d(features, half, 3, padding=1)
        self.output_conv2 = nn.Sequential(
            nn.Conv2d(half, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 1, 1), nn.ReLU(), nn.Identity()
        )


class DPTHead(nn.Module):
    """DPT decoder; with `temporal=True` it carries the four temporal modules of VDA.

    `features`: list of 4 (patch_tokens (N, h*w, D), cls) pairs from the encoder, N = B*T frames.
    Returns (depth (N, 1, 14h, 14w) — patch_size·h in general, cache states) — states are only collected when asked for.
    """

    def __init__(self, in_dim: int, features: int, out_channels: Sequence[int], temporal: bool = True,
                 patch_size: int = PATCH_SIZE):
        super().__init__()
        self.temporal = temporal
        self.patch_size = patch_size  # the output is patch_size times the token grid (14: DINOv2, 16: DINOv3)
        self.gradient_checkpointing = False
        # Frames per chunk of the tail; 0 runs it on all frames at once (the graph export does: the chunking is a
        # Python branch on the frame count, and the result is the same).
        self.micro_batch = MICRO_BATCH
        self.channels_last: bool | None = None  # NHWC maps: `nhwc` (None: CPU inference); models/speed.py
        self.projects = nn.ModuleList([nn.Conv2d(in_dim, c, 1) for c in out_channels])
        self.resize_layers = nn.ModuleList(
            [
                nn.ConvTranspose2d(out_channels[0], out_channels[0], 4, stride=4),
                nn.ConvTranspose2d(out_channels[1], out_channels[1], 2, stride=2),
                nn.Identity(),
                nn.Conv2d(out_channels[3], out_channels[3], 3, stride=2, padding=1),
            ]
        )
        self.scratch = _Scratch(out_channels, features)
        if temporal:
            channels = (out_channels[2], out_channels[3], features, features)
            self.motion_modules = nn.ModuleList([TemporalModule(c) for c in channels])

    def _tail(self, path_3, layer2_rn, layer1_rn, out_size):
        """Steps after the last temporal module: per-frame, so they can run in chunks of frames."""
        s = self.scratch
        path_2 = s.refinenet2(path_3, layer2_rn, size=layer1_rn.shape[2:])
        path_1 = s.refinenet1(path_2, layer1_rn)
        out = _resize(s.output_conv1(path_1), size=out_size, channels_last=nhwc(self.channels_last, path_1))
        # The published model runs the last convolutions in float32 under autocast (fp16 and bf16 lose the
        # low-contrast detail there: black / banded maps, Video Depth Anything issues #92, #97). Its guard names
        # only CUDA, so under CPU autocast the published code runs them in bfloat16; this one turns off autocast
        # on the device in use, so the output convolutions are float32 on every device.
        with torch.autocast(device_type=out.device.type, enabled=False):
            depth = s.output_conv2(out.float())
        return depth.to(out.dtype)

    def _temporal(self, idx, x, num_frames, cached, states):
        if not self.temporal:
            return x
        c = None if cached is None else cached[2 * idx : 2 * idx + 2]
        module = self.motion_modules[idx]
        if self.gradient_checkpointing and self.training and cached is None:
            x, st = checkpoint(module, x, num_frames, None, use_reentrant=False)
        else:
            x, st = module(x, num_frames, c)
        states.extend(st)
        return x

    def forward(self, features, patch_h: int, patch_w: int, num_frames: int = 1, cached=None,
                outputs: int | None = None):
        """`outputs`: only the first `outputs` frames of each clip get a depth map (B*outputs maps): the layers
        after the last temporal module work frame by frame, so frames whose maps nobody reads (a long video's
        padding slots) skip the high-resolution tail, most of the head's work."""
        layers = []
        for i, (tokens, _cls) in enumerate(features):
            x = tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[-1], patch_h, patch_w)
            if nhwc(self.channels_last, x):
                x = x.contiguous(memory_format=torch.channels_last)
            layers.append(self.resize_layers[i](self.projects[i](x)))
        layer_1, layer_2, layer_3, layer_4 = layers
        states: list[torch.Tensor] = []
        layer_3 = self._temporal(0, layer_3, num_frames, cached, states)
        layer_4 = self._temporal(1, layer_4, num_frames, cached, states)
        s = self.scratch
        layer1_rn, layer2_rn = s.layer1_rn(layer_1), s.layer2_rn(layer_2)
        layer3_rn, layer4_rn = s.layer3_rn(layer_3), s.layer4_rn(layer_4)
        path_4 = s.refinenet4(layer4_rn, size=layer3_rn.shape[2:])
        path_4 = self._temporal(2, path_4, num_frames, cached, states)
        path_3 = s.refinenet3(path_4, layer3_rn, size=layer2_rn.shape[2:])
        path_3 = self._temporal(3, path_3, num_frames, cached, states)

        out_size = (patch_h * self.patch_size, patch_w * self.patch_size)
        if outputs is not None and outputs < num_frames:
            keep = lambda x: x.unflatten(0, (-1, num_frames))[:, :outputs].flatten(0, 1)  # noqa: E731
            path_3, layer2_rn, layer1_rn = keep(path_3), keep(layer2_rn), keep(layer1_rn)
        n = path_3.shape[0]
        mb = self.micro_batch
        if self.temporal and mb and n > mb:
            chunks = [
                self._run_tail(path_3[i : i + mb], layer2_rn[i : i + mb], layer1_rn[i : i + mb], out_size)
                for i in range(0, n, mb)
            ]
            depth = torch.cat(chunks, dim=0)
        else:
            depth = self._run_tail(path_3, layer2_rn, layer1_rn, out_size)
        return depth, states

    def _run_tail(self, path_3, layer2_rn, layer1_rn, out_size):
        if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(self._tail, path_3, layer2_rn, layer1_rn, out_size, use_reentrant=False)
        return self._tail(path_3, layer2_rn, layer1_rn, out_size)
