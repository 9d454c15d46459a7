"""The exported graphs as small `nn.Module`s around a `VideoDepthAnything`, and the one numerical piece that had to
be re-stated for tracing: the position-embedding resample.

Four graphs, each with named inputs and outputs (see `IO`):

- `VideoGraph`   frames (B, T, 3, H, W) -> depth (B, T, H, W): the published `VideoDepthAnything.forward`.
- `EncoderGraph` frames (N, 3, H, W) -> tokens_i (N, h*w, D), cls_i (N, D) for the four intermediate layers:
  the published `forward_features` (`pretrained.get_intermediate_layers`).
- `HeadGraph`    tokens_i (B, T, h, w, D) -> depth (B, T, H, W): the published head (`dpt_temporal.py`) + ReLU; the
  token layout carries B, T, h and w, so the graph needs no integer inputs.
- `StreamGraph`  frame (B, 3, H, W) + cache_<tm>_<attn> (B*S, Tc, C) -> depth (B, H, W) + state_<tm>_<attn>
  (B*S, 1, C): one step of the published online mode (`video_depth_stream.py`); Tc = 0 on the first frame.

Every input and output name and symbolic shape comes from `signatures.graph_io`.

`export_mode(model)` swaps two things for the duration of an export, both numerically neutral: the head's 4-frame
micro-batching (a Python branch on the frame count) is switched off, and the encoder resamples its position
embedding with `pos_embed_graph`, which keeps the published bicubic-by-scale-factor rule but is written in tensor
ops whose sizes follow the input (torch's `interpolate` with a scale factor bakes the traced size in).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn as nn

from ..models.encoder import GRID, PATCH
from .signatures import patch_of

CUBIC_A = -0.75  # the Keys kernel torch's bicubic uses
POS_OFFSET = 0.1  # the published DINOv2 `interpolate_offset`


def _cubic_near(x: torch.Tensor) -> torch.Tensor:  # |x| <= 1
    return ((CUBIC_A + 2) * x - (CUBIC_A + 3)) * x * x + 1


def _cubic_far(x: torch.Tensor) -> torch.Tensor:  # 1 < |x| < 2
    return ((CUBIC_A * x - 5 * CUBIC_A) * x + 8 * CUBIC_A) * x - 4 * CUBIC_A


def _axis_weights(n, side: int, like: torch.Tensor) -> torch.Tensor:
    """(n, side) matrix of torch's bicubic (align_corners False, no antialias) along one axis, driven by the scale
    factor (n + 0.1) / side as the published code passes it: source coordinate (i + 0.5) * side / (n + 0.1) - 0.5,
    taps clamped to the border. When n == side == GRID and the other axis too, the caller uses the identity."""
    dst = torch.arange(n, dtype=torch.float32, device=like.device)
    size = torch.ones_like(dst).sum()  # n as a tensor: keeps the graph's sizes symbolic
    real = (dst + 0.5) * (side / (size + POS_OFFSET)) - 0.5
    first = torch.floor(real)
    t = real - first
    src = torch.arange(side, dtype=torch.float32, device=like.device)
    weights = torch.zeros_like(real[:, None] * src[None, :])
    for k, coeff in enumerate((_cubic_far(t + 1), _cubic_near(t), _cubic_near(1 - t), _cubic_far(2 - t))):
        tap = torch.clamp(first + (k - 1), 0, side - 1)
        weights = weights + (tap[:, None] == src[None, :]).to(torch.float32) * coeff[:, None]
    return weights


def pos_embed_graph(pos_embed: torch.Tensor, h, w) -> torch.Tensor:
    """`models.encoder.interpolate_pos_embed` in traceable form (same rule, separable matrix products).

    The stored (1, 1 + 37*37, D) table is resampled to h x w by Wh @ P @ Ww^T, with the weights of torch's bicubic
    at the published scale factors; the exactly-518x518 case keeps the table unchanged, as published, by a
    `where` between the weights and the identity. Differs from `interpolate_pos_embed` by float rounding only.
    """
    dim = pos_embed.shape[-1]
    pe = pos_embed.float()
    wh, ww = _axis_weights(h, GRID, pe), _axis_weights(w, GRID, pe)
    eye_h = (torch.arange(h, device=pe.device)[:, None] == torch.arange(GRID, device=pe.device)[None, :]).float()
    eye_w = (torch.arange(w, device=pe.device)[:, None] == torch.arange(GRID, device=pe.device)[None, :]).float()
    stored = (wh.shape[0] * torch.ones((), device=pe.device) == GRID) & (
        ww.shape[0] * torch.ones((), device=pe.device) == GRID)
    wh, ww = torch.where(stored, eye_h, wh), torch.where(stored, eye_w, ww)
    grid = pe[0, 1:].reshape(GRID, GRID * dim)
    rows = (wh @ grid).reshape(-1, GRID, dim)  # (h, 37, D)
    patch = torch.matmul(ww[None], rows)  # (h, w, D)
    return torch.cat([pe[:, :1], patch.reshape(1, -1, dim)], dim=1).to(pos_embed.dtype)


def _aa_cubic(x: torch.Tensor) -> torch.Tensor:
    """The kernel of torch's antialiased bicubic (a = -0.5, PIL's), zero beyond 2."""
    a, x = -0.5, x.abs()
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return torch.where(x < 1, near, torch.where(x < 2, far, torch.zeros_like(x)))


def _aa_axis_weights(n, side: int, like: torch.Tensor) -> torch.Tensor:
    """(n, side) matrix of `F.interpolate(size=n, mode="bicubic", antialias=True)` along one axis (what timm's
    `resample_abs_pos_embed` calls): centre scale * (i + 0.5), taps (j + 0.5 - centre) / max(scale, 1), rows
    normalised, scale = side / n. At n == side it is the identity."""
    dst = torch.arange(n, dtype=torch.float32, device=like.device)
    scale = side / torch.ones_like(dst).sum()  # n as a tensor: keeps the graph's sizes symbolic
    centre = (dst + 0.5) * scale
    src = torch.arange(side, dtype=torch.float32, device=like.device)
    weights = _aa_cubic((src[None, :] + 0.5 - centre[:, None]) / torch.clamp(scale, min=1.0))
    return weights / weights.sum(dim=1, keepdim=True)


def timm_pos_embed_graph(vit):
    """timm's `VisionTransformer._pos_embed` (dynamic image size; timm `vision_transformer.py`) for a DINOv2 timm
    backbone, its position-embedding resample (`resample_abs_pos_embed`: bicubic, antialias, which ONNX lacks)
    as matrix products whose sizes follow the input. Differs from timm's by float rounding only."""

    def pos_embed(x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        prefix = 0 if vit.no_embed_class else vit.num_prefix_tokens
        old_h, old_w = vit.patch_embed.grid_size
        table = vit.pos_embed
        grid = table[:, prefix:].float().reshape(old_h, old_w * c)
        rows = (_aa_axis_weights(h, old_h, grid) @ grid).reshape(-1, old_w, c)  # (h, old_w, C)
        patch = torch.matmul(_aa_axis_weights(w, old_w, grid)[None], rows).reshape(1, -1, c)  # (1, h*w, C)
        pos = torch.cat([table[:, :prefix], patch.to(table.dtype)], dim=1)
        tokens = [t.expand(b, -1, -1) for t in (vit.cls_token, vit.reg_token) if t is not None]
        x = x.reshape(b, -1, c)
        if vit.no_embed_class:  # registers: the table covers the patches only
            x = torch.cat(tokens + [x + pos], dim=1)
        else:
            x = torch.cat(tokens + [x], dim=1) + pos
        return vit.pos_drop(x)

    return pos_embed


class Float32Island(nn.Module):
    """Runs `inner` in float32 with CPU autocast off.

    For the fp16 export, which traces under CPU autocast: CUDA autocast (the published default) runs LayerNorm and
    GroupNorm in float32 while CPU autocast runs them in float16, and the published head computes `output_conv2`
    in float32 behind a guard that names CUDA only. Wrapping those modules restates the CUDA policy on the CPU."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", enabled=False):
            return self.inner(x.float())


def _float32_modules(model) -> list[tuple[nn.Module, str]]:
    """(parent, attribute) of every module the fp16 export keeps in float32."""
    out = [(model.head.scratch, "output_conv2")]
    for parent in model.modules():
        for name, child in parent.named_children():
            if isinstance(child, (nn.LayerNorm, nn.GroupNorm)):
                out.append((parent, name))
    return out


@contextlib.contextmanager
def export_mode(model, fp16: bool = False) -> Iterator[None]:
    """Within the block the model traces with dynamic sizes (see the module docstring); restored afterwards.
    With `fp16`, the output tail and the norms also become float32 islands (see `Float32Island`)."""
    encoder, head = model.pretrained, model.head
    # A timm backbone (models/timm_encoder.py) traces timm's own code, but for a DINOv2 one's position-embedding
    # resample (antialiased bicubic, no ONNX op); DINOv3's RoPE traces as it is.
    own_resample = hasattr(encoder, "resample_pos_embed")
    vit = getattr(encoder, "vit", None)
    timm_table = vit is not None and getattr(vit, "pos_embed", None) is not None
    saved = getattr(encoder, "resample_pos_embed", None), head.micro_batch
    islands = _float32_modules(model) if fp16 else []
    originals = [getattr(parent, name) for parent, name in islands]
    head.micro_batch = 0
    if own_resample:
        encoder.resample_pos_embed = pos_embed_graph
    if timm_table:
        vit._pos_embed = timm_pos_embed_graph(vit)  # an instance attribute over the class's method
    for (parent, name), module in zip(islands, originals):
        setattr(parent, name, Float32Island(module))
    try:
        yield
    finally:
        head.micro_batch = saved[1]
        if own_resample:
            encoder.resample_pos_embed = saved[0]
        if timm_table:
            del vit._pos_embed
        for (parent, name), module in zip(islands, originals):
            setattr(parent, name, module)


class _Graph(nn.Module):
    """Float32 inputs and outputs; with fp16 the body runs under CPU fp16 autocast (the published CUDA autocast
    policy: matmuls and convolutions in fp16, norms and softmax in fp32) and every output is cast back to fp32."""

    def __init__(self, model, fp16: bool = False):
        super().__init__()
        self.model, self.fp16 = model, fp16
        self.patch = patch_of(model.config)

    def forward(self, *inputs):
        with torch.autocast("cpu", dtype=torch.float16, enabled=self.fp16):
            out = self.body(*inputs)
        return tuple(o.float() for o in out) if isinstance(out, tuple) else out.float()


def patch_guard(x: torch.Tensor, patch: int = PATCH) -> torch.Tensor:
    """x unchanged, through a reshape that fails at run time unless H and W are multiples of the patch (14; 16 for
    DINOv3): without it a graph given 125 rows would silently predict 112 (the patch convolution floors)."""
    *lead, height, width = x.shape
    return x.reshape(*lead, height // patch, patch, width // patch, patch).reshape(x.shape)


class VideoGraph(_Graph):
    def body(self, frames: torch.Tensor) -> torch.Tensor:
        return self.model(patch_guard(frames, self.patch))


class EncoderGraph(_Graph):
    def body(self, frames: torch.Tensor):
        out = []
        for tokens, cls in self.model.forward_features(patch_guard(frames, self.patch)):
            out += [tokens, cls]
        return tuple(out)


class HeadGraph(_Graph):
    def body(self, tokens_0, tokens_1, tokens_2, tokens_3):
        b, t, h, w, _ = tokens_0.shape
        feats = [(x.reshape(b * t, h * w, x.shape[-1]), None) for x in (tokens_0, tokens_1, tokens_2, tokens_3)]
        depth, _ = self.model.forward_depth(feats, h * self.patch, w * self.patch, b, t)
        return depth


class StreamGraph(_Graph):
    """One online step. Caches are the pre-position-encoding states of the context frames, (B*S, Tc, C)."""

    def body(self, frame, *caches):
        height, width = frame.shape[-2:]
        depth, states = self.model.forward_step(patch_guard(frame, self.patch), height, width, list(caches))
        return (depth[:, 0], *states)


GRAPHS = {"video": VideoGraph, "encoder": EncoderGraph, "head": HeadGraph, "stream": StreamGraph}
