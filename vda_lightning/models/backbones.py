"""timm ViT backbones by name: which names are accepted, and the model config each one gets.

`encoder:` takes, besides the registry's `vits|vitb|vitl` (and the test-only `vitt`), a timm model name of two
families (timm 1.0.x):

* DINOv2, with or without registers: `vit_{small,base,large,giant}_patch14[_reg4]_dinov2` (patch 14, learned
  absolute position embedding, timm `vision_transformer.py`);
* DINOv3: `vit_{small,small_plus,base,large,huge_plus,7b}_patch16_dinov3[_qkvb]` (patch 16, RoPE, four register
  tokens, timm `eva.py`).

The config a name gets (`timm_config`): embedding width, depth, heads and patch size are the timm model's (or the
`overrides` given: tests build small random models of a real family); the four tapped blocks and the DPT head's
widths are the published `run.py` / Depth Anything V2 table when (width, depth) is a published size
(`PUBLISHED_HEADS`), else `spaced_taps` and `head_widths` below. The taps can be overridden (`layer_idx=`).

This module is torch-free; `timm_config` imports timm (and torch) on use, to read the architecture of a name from a
model built on the meta device (no memory, no weights).
"""
from __future__ import annotations

import functools
import re

# Names of the two families (the architecture only; a pretrained tag such as `.lvd1689m` goes in
# `encoder_checkpoint`).
FAMILIES = {
    "dinov2": re.compile(r"^vit_[a-z0-9]+(?:_[a-z0-9]+)*?_patch14_dinov2$"),
    "dinov2-reg": re.compile(r"^vit_[a-z0-9]+(?:_[a-z0-9]+)*?_patch14_reg\d+_dinov2$"),
    "dinov3": re.compile(r"^vit_[a-z0-9]+(?:_[a-z0-9]+)*?_patch16_dinov3(?:_qkvb)?$"),
}
MAX_NAME = 64

# (embed_dim, depth) -> (taps, DPT features, DPT out_channels): the published `model_configs` of Depth Anything V2 /
# Video Depth Anything `run.py` and the `intermediate_layer_idx` of their `dpt.py` (vits, vitb, vitl, vitg).
PUBLISHED_HEADS = {
    (384, 12): ((2, 5, 8, 11), 64, (48, 96, 192, 384)),
    (768, 12): ((2, 5, 8, 11), 128, (96, 192, 384, 768)),
    (1024, 24): ((4, 11, 17, 23), 256, (256, 512, 1024, 1024)),
    (1536, 40): ((9, 19, 29, 39), 384, (1536, 1536, 1536, 1536)),
}


def family(name: str) -> str | None:
    """"dinov2", "dinov2-reg" or "dinov3" for a timm name of those families; None for anything else."""
    if not isinstance(name, str) or len(name) > MAX_NAME:
        return None
    return next((fam for fam, pattern in FAMILIES.items() if pattern.match(name)), None)


def is_timm_name(name) -> bool:
    return family(name) is not None


def spaced_taps(depth: int) -> tuple[int, int, int, int]:
    """Four blocks evenly spaced, the last one last: round(depth * k / 4) - 1 for k = 1..4 (12 blocks: 2, 5, 8, 11,
    the published ViT-S/B taps; fewer than four blocks repeat some)."""
    return tuple(max(0, round(depth * k / 4) - 1) for k in range(1, 5))  # type: ignore[return-value]


GROUPS = 32  # the temporal modules' GroupNorm groups (models/temporal.py): their channels are multiples of it


def _up(x: int, multiple: int = GROUPS) -> int:
    return max(multiple, -(-x // multiple) * multiple)


def head_widths(embed_dim: int) -> tuple[int, tuple[int, int, int, int]]:
    """(features, out_channels) of the DPT head for a width without a published entry — the published ViT-S (384)
    and ViT-B (768) rule: out_channels D/8, D/4, D/2, D and features D/6, where the widths the temporal modules see
    (features, out_channels[2:]) are rounded to multiples of 32 (their GroupNorm), at least 32."""
    d = int(embed_dim)
    features = max(GROUPS, GROUPS * round(d / (6 * GROUPS)))
    return features, (max(1, d // 8), max(1, d // 4), _up(d // 2), _up(d))


def head_for(embed_dim: int, depth: int) -> tuple[tuple[int, int, int, int], int, tuple[int, int, int, int]]:
    """(taps, features, out_channels): the published entry for a published (width, depth), else the rules."""
    if (embed_dim, depth) in PUBLISHED_HEADS:
        return PUBLISHED_HEADS[(embed_dim, depth)]
    return (spaced_taps(depth), *head_widths(embed_dim))


def timm_version() -> str:
    import timm

    return timm.__version__


def timm_architecture(name: str, **overrides) -> dict:
    """embed_dim, depth, num_heads, patch_size of timm's `name` with `overrides` (timm keyword arguments), read from
    the model built on the meta device (cached: a build takes 0.1-3 s)."""
    return dict(_architecture(name, tuple(sorted(overrides.items()))))


@functools.lru_cache(maxsize=64)
def _architecture(name: str, overrides: tuple) -> tuple:
    import timm
    import torch

    with torch.device("meta"):
        vit = timm.create_model(name, pretrained=False, num_classes=0, **dict(overrides))
    patch = vit.patch_embed.patch_size
    return (("embed_dim", int(vit.embed_dim)), ("depth", len(vit.blocks)),
            ("num_heads", int(vit.blocks[0].attn.num_heads)), ("patch_size", int(patch[0])))
