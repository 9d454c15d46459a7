"""A timm ViT backbone (DINOv2 with or without registers, DINOv3) as the frozen encoder of the depth models.

`TimmEncoder(config)` builds `timm.create_model(config.encoder, pretrained=False, dynamic_img_size=True, ...)` under
`vit` (keys `pretrained.vit.*`, so a checkpoint's encoder slice is a timm state dict) and answers the encoder
interface of `DinoV2Encoder`: `get_intermediate_layers(x)` gives the four tapped blocks as (patch tokens (N, h*w, D),
class token (N, D)) pairs through the final norm, as the published DINOv2 `get_intermediate_layers(norm=True)` does.
The taps are timm's own `forward_intermediates` (timm `vision_transformer.py`, `eva.py`): its position embedding
(resampled absolute for DINOv2, RoPE for DINOv3) and its prefix split; of the prefix tokens the class token is kept
and the register tokens are dropped.

Weights are random here; the frozen encoder's pretrained weights come from `checkpoints/encoder.py`.
"""
from __future__ import annotations

import warnings

import torch
import torch.nn as nn

from .input_contract import is_multiple_size


class TimmEncoder(nn.Module):
    """timm backbone with the depth models' encoder interface; `layer_idx` the four taps, `patch_size` its patch."""

    def __init__(self, config):
        super().__init__()
        import timm

        self.vit = timm.create_model(config.encoder, pretrained=False, num_classes=0, dynamic_img_size=True,
                                     embed_dim=config.embed_dim, depth=config.depth, num_heads=config.num_heads)
        self.layer_idx = tuple(config.layer_idx)
        self.patch_size = int(config.patch_size)
        if config.timm_version and config.timm_version != timm.__version__:  # the checkpoint records its timm
            warnings.warn(f"encoder {config.encoder} was made with timm {config.timm_version}; timm "
                          f"{timm.__version__} builds it now (its layers may compute differently)", stacklevel=2)
        got = int(self.vit.patch_embed.patch_size[0])
        if got != self.patch_size:
            raise ValueError(f"encoder {config.encoder}: timm builds patch {got}, the config says {self.patch_size}")

    def get_intermediate_layers(self, x: torch.Tensor, n=None, return_class_token: bool = True, norm: bool = True):
        """Outputs of the blocks in `n` (default: the config's four), through the final norm; a tuple of
        (patch_tokens (N, h*w, D), cls (N, D)) pairs, or of patch tokens alone."""
        height, width = x.shape[-2:]
        if not is_multiple_size((height, width), self.patch_size):
            raise ValueError(f"input height and width must be multiples of {self.patch_size}, got {height}x{width}")
        idx = tuple(self.layer_idx if n is None else n)
        unique = sorted(set(idx))  # fewer blocks than taps repeat some: compute each once
        outs = self.vit.forward_intermediates(x, indices=unique, return_prefix_tokens=True, norm=norm,
                                              stop_early=True, output_fmt="NLC", intermediates_only=True)
        by_block = dict(zip(unique, outs))
        pairs = [by_block[i] for i in idx]
        if return_class_token:
            return tuple((tokens, prefix[:, 0]) for tokens, prefix in pairs)
        return tuple(tokens for tokens, _ in pairs)
