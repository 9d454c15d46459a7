"""DINOv2 ViT encoder on timm, numerically equal to the published one (published `dinov2.py`, `dinov2_layers/`)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.models.vision_transformer import VisionTransformer

from .input_contract import DEFAULT_INPUT_SIZE, is_multiple_size
from .input_contract import PATCH_SIZE as PATCH

GRID = DEFAULT_INPUT_SIZE // PATCH  # 37: the grid the stored position embedding was trained on


def interpolate_pos_embed(pos_embed: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Resample a (1, 1 + 37*37, D) table to an h x w token grid exactly as the published DINOv2.

    The published code drives bicubic interpolation by a *scale factor* (h + 0.1) / 37, which gives a
    sampling step of 37 / (h + 0.1) rather than 37 / h; timm resizes to the exact size with antialias,
    which differs by ~0.1 on non-square inputs. Done in float32, class entry untouched.
    """
    n = pos_embed.shape[1] - 1
    if n == h * w and h == w:
        return pos_embed
    dtype = pos_embed.dtype
    pe = pos_embed.float()
    cls_pe, patch_pe = pe[:, :1], pe[:, 1:]
    side = int(round(n ** 0.5))
    dim = pe.shape[-1]
    patch_pe = patch_pe.reshape(1, side, side, dim).permute(0, 3, 1, 2)
    patch_pe = F.interpolate(
        patch_pe,
        scale_factor=((h + 0.1) / side, (w + 0.1) / side),
        mode="bicubic",
        align_corners=False,
        antialias=False,
    )
    if patch_pe.shape[-2:] != (h, w):
        raise RuntimeError(f"position-embedding resize gave {tuple(patch_pe.shape[-2:])}, expected {(h, w)}")
    patch_pe = patch_pe.permute(0, 2, 3, 1).reshape(1, h * w, dim)
    return torch.cat([cls_pe, patch_pe], dim=1).to(dtype)


class DinoV2Encoder(VisionTransformer):
    """timm's VisionTransformer with the published DINOv2 state-dict layout and feature semantics.

    Keys match the published `pretrained.*` entries one to one; `mask_token` is kept (unused) so that
    published checkpoints load strictly and our checkpoints load into the published code.
    """

    def __init__(self, embed_dim: int, depth: int, num_heads: int, layer_idx: Sequence[int]):
        super().__init__(
            img_size=GRID * PATCH,
            patch_size=PATCH,
            embed_dim=embed_dim,
            depth=depth,
            num_heads=num_heads,
            mlp_ratio=4.0,
            init_values=1.0,
            num_classes=0,
            global_pool="",
        )
        self.mask_token = nn.Parameter(torch.zeros(1, embed_dim))
        self.layer_idx = tuple(layer_idx)
        # The position-embedding resampler (table, h, w) -> table; graph export swaps in a traceable equivalent.
        self.resample_pos_embed = interpolate_pos_embed

    def _pos_embed(self, x: torch.Tensor) -> torch.Tensor:
        # timm's helper sees flattened tokens and cannot know the grid of a non-square input; every path of
        # ours goes through tokens(), which does.
        raise NotImplementedError("DinoV2Encoder resamples position embeddings in tokens(); use forward_features")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # timm's API: normalised tokens of any size
        return self.norm(self.blocks(self.tokens(x)))

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Patchify, prepend the class token, add the (resampled) position embedding."""
        _, _, height, width = x.shape
        if not is_multiple_size((height, width), PATCH):
            raise ValueError(f"input height and width must be multiples of {PATCH}, got {height}x{width}")
        h, w = height // PATCH, width // PATCH
        t = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls_token.expand(t.shape[0], -1, -1).to(t.dtype), t], dim=1)
        return t + self.resample_pos_embed(self.pos_embed, h, w)

    def get_intermediate_layers(  # type: ignore[override]
        self,
        x: torch.Tensor,
        n: Sequence[int] | None = None,
        return_class_token: bool = True,
        norm: bool = True,
    ):
        """Outputs of the blocks in `n` (default: the variant's four), through the final norm.

        Returns a tuple of (patch_tokens (N, h*w, D), cls (N, D)) pairs, or of patch tokens alone.
        """
        idx = tuple(self.layer_idx if n is None else n)
        t = self.tokens(x)
        outputs = []
        last = max(idx)
        for i, block in enumerate(self.blocks):
            t = block(t)
            if i in idx:
                outputs.append(self.norm(t) if norm else t)
            if i == last:
                break
        if return_class_token:
            return tuple((o[:, 1:], o[:, 0]) for o in outputs)
        return tuple(o[:, 1:] for o in outputs)
