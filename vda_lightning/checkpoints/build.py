"""Build: the model config of a checkpoint, and a strict build whose errors say what does not fit."""
from __future__ import annotations

import functools
import re
from collections import defaultdict
from pathlib import Path

import torch.nn as nn

from ..models import MODEL_CONFIGS, DepthAnythingV2, ModelConfig, get_config
from ..models.depth_anything import IMAGE_HEAD
from ..trust import display
from .peek import METRIC_NAMES, RELATIVE_NAMES  # the published names; in peek.py, read before torch is imported
from .read import CheckpointError, RawCheckpoint


def infer_encoder(sd: dict) -> str | None:
    """The encoder size the tensor shapes suggest (by embedding width and depth)."""
    pos = sd.get("pretrained.pos_embed")
    if pos is None:
        head_proj = sd.get("head.projects.0.weight", sd.get("depth_head.projects.0.weight"))
        width = None if head_proj is None or head_proj.dim() < 2 else head_proj.shape[1]
    else:
        width = pos.shape[-1] if pos.dim() else None
    for name, cfg in MODEL_CONFIGS.items():
        if cfg.embed_dim == width:
            return name
    return None


DAV2_METRIC_MAX_DEPTH = {"hypersim": 20.0, "vkitti": 80.0}  # depth_anything_v2_metric_<dataset>_<enc>.pth


def kind_from_file(raw: RawCheckpoint, metric: bool | None = None) -> tuple[bool | None, str]:
    """(metric?, where that came from): the `metric` argument; our metadata (config / safetensors metadata /
    sidecar); a published file name; else (None, "none") — the file does not say (`checkpoints.kind` can probe)."""
    if metric is not None:
        return bool(metric), "argument"
    saved = raw.saved_config
    if saved is not None and "metric" in saved:
        return bool(saved["metric"]), "metadata"
    if "metric" in raw.metadata:
        return raw.metadata["metric"].lower() == "true", "metadata"
    name = raw.path.name
    if name.startswith(METRIC_NAMES):
        return True, "name"
    if name.startswith(RELATIVE_NAMES):
        return False, "name"
    return None, "none"


def dav2_metric_max_depth(path: Path) -> float | None:
    """max_depth of a published Depth Anything V2 metric checkpoint, from its name (hypersim 20 m, vkitti 80 m)."""
    name = Path(path).name
    if not name.startswith("depth_anything_v2_metric_"):
        return None
    dataset = name[len("depth_anything_v2_metric_"):].split("_")[0]
    return DAV2_METRIC_MAX_DEPTH.get(dataset)


def model_config(raw: RawCheckpoint, sd: dict, encoder: str | None = None, metric: bool | None = None) -> ModelConfig:
    """The stored config (with `metric` overridden when given); else `encoder` or the one the shapes suggest, and
    the kind `kind_from_file` finds (relative when the file does not say)."""
    saved = raw.saved_config
    if saved is not None:
        config = ModelConfig.from_dict(saved)
        return config if metric is None else ModelConfig(**{**config.to_dict(), "metric": bool(metric)})
    name = encoder or raw.metadata.get("encoder") or infer_encoder(sd)
    if name is None:
        raise CheckpointError(f"{display(raw.path)}: cannot tell the encoder size from its tensors; pass encoder=")
    return get_config(name, bool(kind_from_file(raw, metric)[0]))


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


def module_patterns(keys, universe) -> list[str]:
    """`keys` (a subset of `universe`) summarised by the largest modules they fill entirely: every key of the model
    under `head.motion_modules.` missing gives `head.motion_modules.*`, one module `head.motion_modules.3.*`, a
    lone key itself. Sorted, for the first line of an error."""
    keys = set(keys)
    total: dict[str, int] = defaultdict(int)
    inside: dict[str, int] = defaultdict(int)
    for key in universe:
        parts = key.split(".")
        for i in range(1, len(parts)):
            total[".".join(parts[:i])] += 1
            inside[".".join(parts[:i])] += key in keys
    out = set()
    for key in keys:
        parts = key.split(".")
        whole = next((".".join(parts[:i]) for i in range(1, len(parts))
                      if inside[".".join(parts[:i])] == total[".".join(parts[:i])]), None)
        out.add(key if whole is None or total[whole] == 1 else whole + ".*")
    return sorted(out, key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p)])


def _summary(label: str, keys: list, universe) -> str:
    patterns = module_patterns(keys, universe)
    shown = ", ".join(display(p)[:80] for p in patterns[:4]) + (f" and {len(patterns) - 4} more" if len(patterns) > 4
                                                                else "")
    return f"{label} {len(keys)} keys ({shown})"


def check_state_dict(model: nn.Module | dict, sd: dict, path: Path, expected: str) -> None:
    """Raise a CheckpointError listing missing/unexpected keys and shape mismatches, grouped by pattern.

    `model`: the model to fit, or its state dict (e.g. `video_to_image(video.state_dict())` for the image model).
    """
    ours = {k: v.shape for k, v in (model.state_dict() if isinstance(model, nn.Module) else model).items()}
    missing = [k for k in ours if k not in sd]
    unexpected = [k for k in sd if k not in ours]
    shapes = [(k, tuple(sd[k].shape), tuple(v)) for k, v in ours.items() if k in sd and sd[k].shape != v]
    if not (missing or unexpected or shapes):
        return
    first = [_summary("missing", missing, ours)] if missing else []
    first += [_summary("unexpected", unexpected, sd)] if unexpected else []
    first += [f"{len(shapes)} shape mismatches ({display(shapes[0][0])}: checkpoint {shapes[0][1]} vs model "
              f"{shapes[0][2]}{', ...' if len(shapes) > 1 else ''})"] if shapes else []
    parts = [f"{display(path)}: does not fit {expected}: {'; '.join(first)}"]
    if missing:
        parts.append(f"  missing {len(missing)} keys:\n{_grouped(missing)}")
    if unexpected:
        parts.append(f"  unexpected {len(unexpected)} keys:\n{_grouped(unexpected)}")
    if shapes:
        shown = "\n".join(f"    {k}: checkpoint {a} vs model {b}" for k, a, b in shapes[:8])
        more = f"\n    ... and {len(shapes) - 8} more" if len(shapes) > 8 else ""
        parts.append(f"  {len(shapes)} shape mismatches:\n{shown}{more}")
    guess = infer_encoder(sd)
    if any(k.startswith(IMAGE_HEAD) for k in sd):
        parts.append("  this looks like a Depth Anything V2 image checkpoint (depth_head.*, no temporal modules)")
    parts.append(f"  the checkpoint's shapes suggest encoder {guess!r}" if guess
                 else "  no known encoder fits its shapes")
    raise CheckpointError("\n".join(parts))


def describe(cls: type, config: ModelConfig) -> str:
    """How the errors name the model a file should fit."""
    if issubclass(cls, DepthAnythingV2):
        return f"a Depth Anything V2 {config.encoder} image model"
    return f"a Video Depth Anything {config.encoder} model"


@functools.lru_cache(maxsize=16)
def expected_state(cls: type, config: ModelConfig) -> dict:
    """The state dict `cls(config)` would have, as meta tensors (shapes without storage): what a file is checked
    against before the model is allocated, so a file that does not fit costs no model (vitl: 1.3 GB)."""
    import torch

    with torch.device("meta"):
        return dict(cls(config).state_dict())


def build_model(cls: type, config: ModelConfig, sd: dict, path: Path, model: nn.Module | None = None) -> nn.Module:
    """`cls(config)` (or the given, already built `model`) with `sd` loaded strictly, in eval mode; a file that
    does not fit raises the grouped report of `check_state_dict`, before the model is built."""
    check_state_dict(expected_state(cls, config) if model is None else model, sd, path, describe(cls, config))
    model = cls(config) if model is None else model
    model.load_state_dict(sd, strict=True)
    return model.eval()
