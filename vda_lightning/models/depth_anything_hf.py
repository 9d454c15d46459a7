"""transformers' Depth Anything V2 (`DepthAnythingForDepthEstimation`, the `*-hf` checkpoints): the key adapter
to and from our image layout, the config.json <-> `ModelConfig` mapping, and transformers' position-embedding rule.

Read from transformers 5.25 (`models/depth_anything/modeling_depth_anything.py`, `models/dinov2/modeling_dinov2.py`,
the `Dinov2Model` renames in `conversion_mapping.py`); nothing here imports transformers. The two networks are the
same computation (timm's ViT blocks and transformers' Dinov2Layer: pre-norm, LayerScale, exact GELU, LayerNorm eps
1e-6; the DPT neck and head: bilinear, align_corners=True, in both), so the adapter is a renaming plus the fused qkv:

=====================================================================  =============================================
transformers (files: the names `save_pretrained` writes)               ours (`DepthAnythingV2`, published layout)
=====================================================================  =============================================
backbone.embeddings.cls_token / mask_token / position_embeddings       pretrained.cls_token / mask_token / pos_embed
backbone.embeddings.patch_embeddings.projection.*                      pretrained.patch_embed.proj.*
backbone.encoder.layer.{i}.norm1.* / norm2.* / mlp.fc1.* / mlp.fc2.*   pretrained.blocks.{i}.(same names)
backbone.encoder.layer.{i}.attention.attention.{query,key,value}.*     pretrained.blocks.{i}.attn.qkv.* (q;k;v rows)
backbone.encoder.layer.{i}.attention.output.dense.*                    pretrained.blocks.{i}.attn.proj.*
backbone.encoder.layer.{i}.layer_scale{1,2}.lambda1                    pretrained.blocks.{i}.ls{1,2}.gamma
backbone.layernorm.*                                                   pretrained.norm.*
neck.reassemble_stage.layers.{j}.projection.* / resize.*               depth_head.projects.{j}.* / resize_layers.{j}.*
neck.convs.{j}.weight                                                  depth_head.scratch.layer{j+1}_rn.weight
neck.fusion_stage.layers.{j}.projection.*                              depth_head.scratch.refinenet{4-j}.out_conv.*
neck.fusion_stage.layers.{j}.residual_layer{r}.convolution{c}.*        ...refinenet{4-j}.resConfUnit{r}.conv{c}.*
head.conv1.* / conv2.* / conv3.*                                       depth_head.scratch.output_conv1.* /
                                                                       output_conv2.0.* / output_conv2.2.*
=====================================================================  =============================================

transformers 5 names the attention `attention.{q,k,v,o}_proj` in memory (and reads the older names above through
its conversion mapping); both are accepted, the older ones are written (transformers 4 and 5 read them).
The fusion stage runs deepest first (its layer 0 is the published `refinenet4`). The backbone's `out_indices`
count stages from the embeddings (stage k = the output of block k-1): the taps are `out_indices - 1`.

Numerical details (why a converted model equals transformers' only with `match_transformers`):
* the head's last activation: relative ReLU(z) * max_depth (max_depth 1 in every relative config; another value
  is folded into conv3, exact since ReLU(a z) = a ReLU(z) for a > 0); metric sigmoid(z) * max_depth, which is the
  published metric DAv2 head (`metric_depth/depth_anything_v2/dpt.py`) that `DepthAnythingV2(max_depth=...)` runs;
* position embeddings: transformers resamples the 37 x 37 table by bicubic interpolation to the exact token grid
  (`Dinov2Embeddings.interpolate_pos_encoding`, size=(h, w)); the published DINOv2, and so our encoder, drives the
  same interpolation by the scale factor (h + 0.1) / 37 (`encoder.interpolate_pos_embed`). The two agree only where
  no resampling happens (a 518 x 518 input); `match_transformers(model)` gives a model transformers' rule. Loaded
  `-hf` weights keep the published rule: they are conversions of the published weights.
"""
from __future__ import annotations

import re
from collections import defaultdict

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..trust import display
from .configs import MODEL_CONFIGS, ModelConfig

BACKBONE, LAYER = "backbone.", "backbone.encoder.layer."
QKV_LEGACY = ("attention.attention.query", "attention.attention.key", "attention.attention.value")
# transformers 5's in-memory names -> the names its files carry (its conversion_mapping.py, "Dinov2Model")
V5_NAMES = {"attention.q_proj.": "attention.attention.query.", "attention.k_proj.": "attention.attention.key.",
            "attention.v_proj.": "attention.attention.value.", "attention.o_proj.": "attention.output.dense."}
OPTIONAL = ("backbone.embeddings.mask_token",)  # use_mask_token=False configs have none (it is unused for depth)
WB = (".weight", ".bias")


def is_transformers_state_dict(sd: dict) -> bool:
    """transformers' `DepthAnythingForDepthEstimation` layout: `backbone.*` / `neck.*`, none of our `pretrained.*`."""
    keys = [k for k in sd if isinstance(k, str)]
    return any(k.startswith((BACKBONE, "neck.")) for k in keys) and not any(k.startswith("pretrained.") for k in keys)


def _block_map(i: int) -> dict[str, str]:
    ours, theirs = f"pretrained.blocks.{i}.", f"{LAYER}{i}."
    names = {f"{n}{s}": f"{n}{s}" for n in ("norm1", "norm2", "mlp.fc1", "mlp.fc2") for s in WB}
    names.update({f"attn.proj{s}": f"attention.output.dense{s}" for s in WB})
    names.update({"ls1.gamma": "layer_scale1.lambda1", "ls2.gamma": "layer_scale2.lambda1"})
    return {ours + a: theirs + b for a, b in names.items()}


def _head_map() -> dict[str, str]:
    head, s = "depth_head.", "depth_head.scratch."
    out = {f"{head}projects.{j}{w}": f"neck.reassemble_stage.layers.{j}.projection{w}" for j in range(4) for w in WB}
    out.update({f"{head}resize_layers.{j}{w}": f"neck.reassemble_stage.layers.{j}.resize{w}"
                for j in (0, 1, 3) for w in WB})  # layer 2 keeps the resolution: an Identity in both
    out.update({f"{s}layer{j + 1}_rn.weight": f"neck.convs.{j}.weight" for j in range(4)})
    for j in range(4):
        ours, theirs = f"{s}refinenet{4 - j}.", f"neck.fusion_stage.layers.{j}."
        out.update({f"{ours}out_conv{w}": f"{theirs}projection{w}" for w in WB})
        out.update({f"{ours}resConfUnit{r}.conv{c}{w}": f"{theirs}residual_layer{r}.convolution{c}{w}"
                    for r in (1, 2) for c in (1, 2) for w in WB})
    for ours, theirs in (("output_conv1", "conv1"), ("output_conv2.0", "conv2"), ("output_conv2.2", "conv3")):
        out.update({f"{s}{ours}{w}": f"head.{theirs}{w}" for w in WB})
    return out


def key_map(depth: int) -> dict[str, str]:
    """Our key -> transformers' file key, for every tensor but the fused qkv (split in three, `QKV_LEGACY`)."""
    emb = "backbone.embeddings."
    out = {"pretrained.cls_token": emb + "cls_token", "pretrained.mask_token": emb + "mask_token",
           "pretrained.pos_embed": emb + "position_embeddings",
           **{f"pretrained.patch_embed.proj{w}": f"{emb}patch_embeddings.projection{w}" for w in WB},
           **{f"pretrained.norm{w}": f"backbone.layernorm{w}" for w in WB}}
    for i in range(depth):
        out.update(_block_map(i))
    out.update(_head_map())
    return out


def transformers_keys(depth: int) -> set[str]:
    """Every key of a `depth`-block `DepthAnythingForDepthEstimation` file (the names `save_pretrained` writes)."""
    qkv = {f"{LAYER}{i}.{n}{w}" for i in range(depth) for n in QKV_LEGACY for w in WB}
    return set(key_map(depth).values()) | qkv


def _pattern(key: str) -> str:
    return re.sub(r"\.\d+\.", ".{i}.", display(key))[:80]


def _summary(label: str, keys: set[str]) -> str:
    counts: dict[str, int] = defaultdict(int)
    for k in keys:
        counts[_pattern(k)] += 1
    shown = [p + (f" x{n}" if n > 1 else "") for p, n in sorted(counts.items())]
    more = f" and {len(shown) - 6} more patterns" if len(shown) > 6 else ""
    return f"{label} {len(keys)} key{'s' if len(keys) > 1 else ''} ({', '.join(shown[:6])}{more})"


def _file_names(sd: dict) -> dict:
    """transformers 5's in-memory attention names renamed to the ones its files carry."""
    out = {}
    for k, v in sd.items():
        for new, old in V5_NAMES.items():
            if k.startswith(LAYER) and new in k:
                k = k.replace(new, old)
        out[k] = v
    return out


def transformers_depth(sd: dict) -> int:
    """The number of ViT blocks a transformers state dict holds (one more than its highest layer index)."""
    found = [int(m.group(1)) for k in sd if (m := re.match(re.escape(LAYER) + r"(\d+)\.", k))]
    return max(found) + 1 if found else 0


def check_transformers_keys(sd: dict) -> None:
    """A ValueError in one line naming the missing and unexpected key patterns unless `sd` holds exactly the keys of
    a `DepthAnythingForDepthEstimation` with as many blocks as its highest layer index says (mask_token optional)."""
    sd = _file_names(sd)
    expected = transformers_keys(transformers_depth(sd))
    missing = expected - set(sd) - set(OPTIONAL)
    unexpected = set(sd) - expected
    if missing or unexpected:
        parts = ([_summary("missing", missing)] if missing else []) + (
            [_summary("unexpected", unexpected)] if unexpected else [])
        raise ValueError(f"not a transformers DepthAnythingForDepthEstimation state dict: {'; '.join(parts)}")


def transformers_to_dav2(sd: dict, max_depth: float = 1.0, metric: bool = False) -> dict:
    """A transformers `DepthAnythingForDepthEstimation` state dict (file or in-memory names) -> our image layout
    (`pretrained.*`, `depth_head.*`). A relative model's max_depth (a factor on ReLU(z)) is folded into conv3;
    a metric one keeps its sigmoid head, run by `DepthAnythingV2(config, max_depth)`. Refuses, in one line naming
    the key patterns, a state dict that is not exactly such a model's (`check_transformers_keys`)."""
    check_transformers_keys(sd)
    sd = _file_names(sd)
    depth = transformers_depth(sd)
    out = {ours: sd[theirs] for ours, theirs in key_map(depth).items() if theirs in sd}
    if "pretrained.mask_token" not in out:  # unused by depth estimation; our layout keeps it (published files do)
        out["pretrained.mask_token"] = torch.zeros_like(sd["backbone.embeddings.cls_token"][0])
    for i in range(depth):
        for w in WB:
            out[f"pretrained.blocks.{i}.attn.qkv{w}"] = torch.cat([sd[f"{LAYER}{i}.{n}{w}"] for n in QKV_LEGACY])
    if not metric and max_depth != 1.0:
        conv3 = "depth_head.scratch.output_conv2.2."
        out.update({conv3 + n: out[conv3 + n] * max_depth for n in ("weight", "bias")})
    return out


def dav2_to_transformers(sd: dict) -> dict:
    """Our image layout (`pretrained.*`, `depth_head.*`) -> the keys transformers' `save_pretrained` writes."""
    depth = sum(1 for k in sd if k.startswith("pretrained.blocks.") and k.endswith(".attn.qkv.weight"))
    out = {theirs: sd[ours].detach().to("cpu", torch.float32).contiguous() for ours, theirs in key_map(depth).items()}
    for i in range(depth):
        for w in WB:
            q, k, v = sd[f"pretrained.blocks.{i}.attn.qkv{w}"].detach().to("cpu", torch.float32).chunk(3)
            out.update({f"{LAYER}{i}.{n}{w}": t.contiguous() for n, t in zip(QKV_LEGACY, (q, k, v))})
    return out


# -- config.json <-> ModelConfig. The values transformers assumes for absent keys (DepthAnythingConfig, its
# backbone sub-config defaults, then Dinov2Config's), and the ones our network computes with.
DEFAULTS = {"reassemble_hidden_size": 384, "reassemble_factors": [4, 2, 1, 0.5],
            "neck_hidden_sizes": [48, 96, 192, 384], "fusion_hidden_size": 64, "head_in_index": -1,
            "head_hidden_size": 32, "patch_size": 14, "depth_estimation_type": "relative", "max_depth": 1}
BACKBONE_DEFAULTS = {"image_size": 518, "hidden_size": 384, "num_attention_heads": 6, "out_indices": [9, 10, 11, 12]}
DINOV2_DEFAULTS = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "mlp_ratio": 4,
                   "hidden_act": "gelu", "layer_norm_eps": 1e-6, "image_size": 224, "patch_size": 14,
                   "qkv_bias": True, "use_swiglu_ffn": False, "apply_layernorm": True, "num_channels": 3}
FIXED = {"reassemble_factors": [4, 2, 1, 0.5], "head_in_index": -1, "head_hidden_size": 32, "patch_size": 14}
FIXED_BACKBONE = {"image_size": 518, "patch_size": 14, "mlp_ratio": 4, "hidden_act": "gelu", "layer_norm_eps": 1e-6,
                  "qkv_bias": True, "use_swiglu_ffn": False, "apply_layernorm": True, "num_channels": 3}


def _taps(backbone: dict) -> list[int]:
    """The tapped blocks: `out_indices` (stage numbers) or `out_features` ("stage3"...), minus the embeddings stage."""
    if backbone.get("out_indices") is not None:
        return [int(i) - 1 for i in backbone["out_indices"]]
    if backbone.get("out_features") is not None:
        return [int(str(f).removeprefix("stage")) - 1 for f in backbone["out_features"]]
    return [i - 1 for i in BACKBONE_DEFAULTS["out_indices"]]


def config_from_transformers(doc: dict) -> tuple[ModelConfig, float]:
    """(our ModelConfig, its max_depth: the factor on the head's ReLU(z) or sigmoid(z) as `config.metric` says) of a
    schema-checked transformers config.json; a ValueError in one line when it is not a network ours computes, or no
    registry encoder has its sizes."""
    cfg = {**DEFAULTS, **{k: v for k, v in doc.items() if v is not None}}
    given = doc.get("backbone_config") or {}
    backbone = {**DINOV2_DEFAULTS, **({} if given else BACKBONE_DEFAULTS), **given}
    for table, values, where in ((FIXED, cfg, ""), (FIXED_BACKBONE, backbone, "backbone_config.")):
        for name, want in table.items():
            if values.get(name) != want and not (isinstance(want, list) and list(values.get(name) or []) == want):
                raise ValueError(f"{where}{name} is {values.get(name)!r}; the Depth Anything V2 network computes "
                                 f"with {want!r}")
    if int(cfg["reassemble_hidden_size"]) != int(backbone["hidden_size"]):
        raise ValueError(f"reassemble_hidden_size {cfg['reassemble_hidden_size']} is not the backbone's hidden_size "
                         f"{backbone['hidden_size']}")
    arch = {"embed_dim": int(backbone["hidden_size"]), "depth": int(backbone["num_hidden_layers"]),
            "num_heads": int(backbone["num_attention_heads"]), "layer_idx": tuple(_taps(backbone)),
            "features": int(cfg["fusion_hidden_size"]), "out_channels": tuple(int(c) for c in cfg["neck_hidden_sizes"])}
    match = next((name for name, c in MODEL_CONFIGS.items() if all(getattr(c, k) == v for k, v in arch.items())), None)
    if match is None:
        shown = ", ".join(f"{k}={list(v) if isinstance(v, tuple) else v}" for k, v in arch.items())
        raise ValueError(f"no registry encoder ({', '.join(MODEL_CONFIGS)}) has this architecture: {shown}")
    config = ModelConfig(**{**MODEL_CONFIGS[match].to_dict(), "metric": cfg["depth_estimation_type"] == "metric"})
    return config, float(cfg["max_depth"])


def transformers_config(config: ModelConfig, max_depth: float | None = None) -> dict:
    """A config.json transformers builds `DepthAnythingForDepthEstimation` from, for our image model of `config`
    (metric with a sigmoid * `max_depth` head when `max_depth` is given)."""
    backbone = {"model_type": "dinov2", "hidden_size": config.embed_dim, "num_hidden_layers": config.depth,
                "num_attention_heads": config.num_heads, **FIXED_BACKBONE, "layerscale_value": 1.0,
                "out_indices": [i + 1 for i in config.layer_idx],
                "out_features": [f"stage{i + 1}" for i in config.layer_idx],
                "reshape_hidden_states": False, "use_mask_token": True}
    return {"architectures": ["DepthAnythingForDepthEstimation"], "model_type": "depth_anything",
            "backbone_config": backbone, **FIXED, "reassemble_hidden_size": config.embed_dim,
            "neck_hidden_sizes": list(config.out_channels), "fusion_hidden_size": config.features,
            "depth_estimation_type": "relative" if max_depth is None else "metric",
            "max_depth": 1 if max_depth is None else _json_number(max_depth)}


def _json_number(value: float) -> int | float:
    """transformers 5 types max_depth as an int (its metric configs say 20 and 80): an integral value is written so."""
    return int(value) if float(value).is_integer() else float(value)


def transformers_pos_embed(pos_embed: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """transformers' DINOv2 resampling (`Dinov2Embeddings.interpolate_pos_encoding`): bicubic to exactly h x w,
    align_corners=False, no antialias, in float32; the table as it is when the grid is its own and square."""
    n = pos_embed.shape[1] - 1
    if n == h * w and h == w:
        return pos_embed
    side, dim = int(round(n ** 0.5)), pos_embed.shape[-1]
    grid = pos_embed[:, 1:].reshape(1, side, side, dim).permute(0, 3, 1, 2)
    grid = F.interpolate(grid.float(), size=(h, w), mode="bicubic", align_corners=False).to(pos_embed.dtype)
    return torch.cat([pos_embed[:, :1], grid.permute(0, 2, 3, 1).reshape(1, h * w, dim)], dim=1)


def match_transformers(model: nn.Module) -> nn.Module:
    """`model` (image or video) resampling position embeddings as transformers does (`transformers_pos_embed`), so
    that a converted model gives transformers' numbers at every input size; returns the model."""
    model.pretrained.resample_pos_embed = transformers_pos_embed
    return model
