"""Checkpoint I/O: published VDA / DAv2 `.pth`, safetensors, and this framework's Lightning checkpoints.

One entry point, `load_model(path)`. Everything is read with `torch.load(weights_only=True)` or safetensors:
a pickle that needs code to load is refused, never executed.

Lightning checkpoints written by `vda-fit` carry `checkpoint["vda"] = {"config": ModelConfig.to_dict(),
"encoder_source": {"path": str, "sha256": str} | None, "prefix": "model."}`; their `state_dict` holds
`<prefix>head.*` and, when the encoder is embedded, `<prefix>pretrained.*`. A referenced encoder is read back from
`encoder_source["path"]` and must match its hash.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
from collections import defaultdict
from pathlib import Path

import torch
import torch.nn as nn

from .models import (
    MODEL_CONFIGS,
    DepthAnythingV2,
    ModelConfig,
    VideoDepthAnything,
    get_config,
)


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message names the file and the cause."""


# ---------------------------------------------------------------------------------------------- reading

def file_sha256(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def read_checkpoint(path: str | os.PathLike) -> tuple[dict, dict]:
    """Raw contents of a checkpoint file: (object, safetensors metadata or {})."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                return {k: f.get_tensor(k) for k in f.keys()}, meta
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from None
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else "unsupported pickle content"
        raise CheckpointError(
            f"{path}: refused to load — the pickle needs code to run (weights_only=True): {first[:300]}. "
            "Only plain tensor checkpoints are accepted; convert it with safetensors if you trust its source."
        ) from None
    except Exception as e:  # the weights-only unpickler raises many types on garbage
        detail = (str(e).splitlines() or [type(e).__name__])[0][:200]
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}: {detail})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a state dict, found {type(obj).__name__}")
    return obj, {}


def _model_state_dict(obj: dict, path: Path) -> tuple[dict, dict]:
    """Split a checkpoint object into (state dict in published/DAv2 layout, vda info from our ckpts)."""
    if "state_dict" in obj and isinstance(obj["state_dict"], dict):  # Lightning checkpoint
        info = obj.get("vda") or {}
        prefix = info.get("prefix", "model.")
        sd = {k[len(prefix):]: v for k, v in obj["state_dict"].items() if k.startswith(prefix)}
        if not sd:
            raise CheckpointError(f"{path}: Lightning checkpoint without model weights under {prefix!r}")
        return sd, info
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{path}: holds no tensors")
    if any(k.startswith("module.") for k in tensors):  # saved from a DataParallel/DDP wrapper
        tensors = {k.removeprefix("module."): v for k, v in tensors.items()}
    return tensors, {}


def infer_encoder(sd: dict) -> str | None:
    """The encoder size the tensor shapes suggest (by embedding width and depth)."""
    pos = sd.get("pretrained.pos_embed")
    if pos is None:
        head_proj = sd.get("head.projects.0.weight", sd.get("depth_head.projects.0.weight"))
        width = None if head_proj is None else head_proj.shape[1]
    else:
        width = pos.shape[-1]
    for name, cfg in MODEL_CONFIGS.items():
        if cfg.embed_dim == width:
            return name
    return None


def _pattern(key: str) -> str:
    return re.sub(r"\.\d+\.", ".{i}.", key)


def _grouped(keys) -> str:
    groups: dict[str, int] = defaultdict(int)
    for k in keys:
        groups[_pattern(k)] += 1
    items = sorted(groups.items())
    lines = [f"    {p}" + (f"  (x{n})" if n > 1 else "") for p, n in items[:12]]
    if len(items) > 12:
        lines.append(f"    ... and {len(items) - 12} more key patterns")
    return "\n".join(lines)


def check_state_dict(model: nn.Module, sd: dict, path: Path, expected: str) -> None:
    """Raise a CheckpointError listing missing/unexpected keys and shape mismatches, grouped by pattern."""
    ours = model.state_dict()
    missing = [k for k in ours if k not in sd]
    unexpected = [k for k in sd if k not in ours]
    shapes = [(k, tuple(sd[k].shape), tuple(v.shape)) for k, v in ours.items() if k in sd and sd[k].shape != v.shape]
    if not (missing or unexpected or shapes):
        return
    parts = [f"{path}: does not fit {expected}"]
    if missing:
        parts.append(f"  missing {len(missing)} keys:\n{_grouped(missing)}")
    if unexpected:
        parts.append(f"  unexpected {len(unexpected)} keys:\n{_grouped(unexpected)}")
    if shapes:
        shown = "\n".join(f"    {k}: checkpoint {a} vs model {b}" for k, a, b in shapes[:8])
        more = f"\n    ... and {len(shapes) - 8} more" if len(shapes) > 8 else ""
        parts.append(f"  {len(shapes)} shape mismatches:\n{shown}{more}")
    guess = infer_encoder(sd)
    if any(k.startswith("depth_head.") for k in sd):
        parts.append("  this looks like a Depth Anything V2 image checkpoint (depth_head.*, no temporal modules)")
    parts.append(f"  the checkpoint's shapes suggest encoder {guess!r}" if guess
                 else "  no known encoder fits its shapes")
    raise CheckpointError("\n".join(parts))


def _metric_flag(metric, meta: dict, info: dict, path: Path) -> bool:
    if metric is not None:
        return bool(metric)
    if "config" in info:
        return bool(info["config"].get("metric", False))
    if "metric" in meta:
        return meta["metric"].lower() == "true"
    return path.name.startswith("metric_")


# ---------------------------------------------------------------------------------------------- loading

def load_model(
    path: str | os.PathLike,
    encoder: str | None = None,
    metric: bool | None = None,
    expect: str = "any",
) -> nn.Module:
    """Load any supported checkpoint as a model in eval mode (float32, CPU).

    - published VDA `.pth` / safetensors (`pretrained.*`, `head.*`) → `VideoDepthAnything`, strict;
    - Depth Anything V2 `.pth` (`depth_head.*`) → a `VideoDepthAnything` whose temporal modules are fresh with
      zero output projections (it equals the image model frame by frame), or the `DepthAnythingV2` image model
      itself when `expect="image"`;
    - our Lightning checkpoints (see module docstring).
    `encoder` (vits/vitb/vitl/vitt) is inferred from tensor shapes when None; `metric` from the file when None.
    `expect="video"` refuses image checkpoints, `expect="image"` returns the image model.
    """
    path = Path(path)
    obj, meta = read_checkpoint(path)
    sd, info = _model_state_dict(obj, path)
    if "config" not in info and "config" in meta:  # safetensors written by save_model
        info = {**info, "config": json.loads(meta["config"])}
    sidecar = path.with_name(path.name + ".json")
    if "config" not in info and sidecar.is_file():  # .pth written by save_model
        info = {**info, "config": json.loads(sidecar.read_text())}
    sd = {k: (v.float() if v.is_floating_point() else v) for k, v in sd.items()}  # half-precision files

    if info.get("encoder_source") and not any(k.startswith("pretrained.") for k in sd):
        sd.update(_referenced_encoder(info["encoder_source"], path))

    if "config" in info:
        config = ModelConfig.from_dict(info["config"])
        if metric is not None:
            config = ModelConfig(**{**config.to_dict(), "metric": bool(metric)})
    else:
        name = encoder or meta.get("encoder") or infer_encoder(sd)
        if name is None:
            raise CheckpointError(f"{path}: cannot tell the encoder size from its tensors; pass encoder=")
        config = get_config(name, _metric_flag(metric, meta, info, path))

    is_image = any(k.startswith("depth_head.") for k in sd) and not any(k.startswith("head.") for k in sd)
    if expect == "image":
        if not is_image:
            sd = {("depth_head." + k[5:] if k.startswith("head.") else k): v for k, v in sd.items()
                  if ".motion_modules." not in k}
        model: nn.Module = DepthAnythingV2(config)
        check_state_dict(model, sd, path, f"a Depth Anything V2 {config.encoder} image model")
    elif is_image:
        if expect == "video":
            check_state_dict(VideoDepthAnything(config), sd, path, f"a Video Depth Anything {config.encoder} model")
        image = DepthAnythingV2(config)
        check_state_dict(image, sd, path, f"a Depth Anything V2 {config.encoder} image model")
        image.load_state_dict(sd, strict=True)
        from .models import video_model_from_image_model

        return video_model_from_image_model(image).eval()
    else:
        model = VideoDepthAnything(config)
        check_state_dict(model, sd, path, f"a Video Depth Anything {config.encoder} model")
    model.load_state_dict(sd, strict=True)
    return model.eval()


def load_image_model(path: str | os.PathLike, encoder: str | None = None) -> DepthAnythingV2:
    """A Depth Anything V2 image model (the teacher) from a DAv2 or VDA checkpoint."""
    return load_model(path, encoder=encoder, expect="image")  # type: ignore[return-value]


def _referenced_encoder(source: dict, ckpt: Path) -> dict:
    enc_path = Path(source["path"])
    if not enc_path.is_file():
        raise CheckpointError(
            f"{ckpt}: its frozen encoder comes from {enc_path}, which is missing; restore that file or train "
            "with the encoder embedded"
        )
    if source.get("sha256") and file_sha256(enc_path) != source["sha256"]:
        raise CheckpointError(f"{ckpt}: the referenced encoder file {enc_path} changed (sha256 mismatch)")
    obj, _ = read_checkpoint(enc_path)
    sd, _ = _model_state_dict(obj, enc_path)
    return {k: (v.float() if v.is_floating_point() else v) for k, v in sd.items() if k.startswith("pretrained.")}


# ---------------------------------------------------------------------------------------------- writing

def published_state_dict(model: nn.Module) -> dict:
    """State dict in the published layout (VDA: pretrained.* + head.*; DAv2: pretrained.* + depth_head.*)."""
    return {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}


def save_model(model: nn.Module, path: str | os.PathLike) -> Path:
    """Write the full model in the published key layout, atomically.

    `.pth`: a plain state dict of float32 tensors, loadable strictly by the published code; the config (encoder,
    relative vs metric) goes to a `<file>.json` sidecar. `.safetensors`: the config goes into the metadata.
    """
    path = Path(path)
    config: ModelConfig = model.config  # type: ignore[assignment]
    sd = published_state_dict(model)
    tmp = path.with_name(path.name + ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        meta = {"format": "pt", "encoder": config.encoder, "metric": str(config.metric).lower(),
                "config": json.dumps(config.to_dict())}
        save_file(sd, str(tmp), metadata=meta)
    else:
        torch.save(sd, str(tmp))
        sidecar = path.with_name(path.name + ".json")
        sidecar_tmp = sidecar.with_name(sidecar.name + ".tmp")
        sidecar_tmp.write_text(json.dumps(config.to_dict(), indent=1))
        os.replace(sidecar_tmp, sidecar)
    os.replace(tmp, path)
    return path
