"""Pretrained weights for a timm backbone (`models/timm_encoder.py`): the frozen encoder of a run that starts from
a backbone rather than from a Depth Anything checkpoint (`encoder_checkpoint:` of `vda fit`).

`load_encoder_weights(model, source)` fills `model.pretrained` from:

* `hf://ORG/REPO[/FILE][@REVISION]` — e.g. `hf://timm/vit_small_patch16_dinov3.lvd1689m`, timm's own Hub
  repository (its `model.safetensors`), fetched through huggingface_hub (`hub.checkpoint_path`: its cache,
  `HF_ENDPOINT`, `HF_HUB_OFFLINE`, tokens);
* timm's pretrained tag alone (`lvd1689m`): the repository `timm/<encoder>.<tag>`, as timm names them;
* a local file (safetensors or a `.pth` state dict).

Every file is read by `read.read_checkpoint` (the trust boundary: safetensors or `torch.load(weights_only=True)`).
Accepted layouts: timm's (as its Hub repositories hold them), ours (`pretrained.vit.*`, with or without a Lightning
`model.` prefix), or one timm converts with the family's own `checkpoint_filter_fn` (Meta's DINOv2 / DINOv3
release files). The load is strict; a file that does not fit is one `CheckpointError` line naming it.
"""
from __future__ import annotations

import re
import sys

from ..trust import display
from .read import CheckpointError, read_checkpoint

TAG = re.compile(r"^[a-z0-9_]{1,40}$")  # a timm pretrained tag: lvd1689m, sat493m
OUR_PREFIXES = ("model.pretrained.vit.", "pretrained.vit.")


def encoder_file(source: str, encoder: str):
    """The local file `source` names (see the module docstring); Hub names are fetched (`hub.checkpoint_path`)."""
    from pathlib import Path

    if TAG.match(source) and not _exists(source):
        source = f"hf://timm/{encoder}.{source}"
    if not source.startswith("hf://"):
        return Path(source)
    from .hub import checkpoint_path

    return checkpoint_path(source)


def _exists(path: str) -> bool:
    import os

    return os.path.lexists(path)


def _timm_layout(sd: dict, vit) -> dict:
    """`sd` in the layout of `vit` (a timm model): ours with its prefix taken off, timm's as it is, else the family's
    `checkpoint_filter_fn` (timm's converter of the original release files)."""
    for prefix in OUR_PREFIXES:
        if any(k.startswith(prefix) for k in sd):
            return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    own = set(vit.state_dict())
    if set(sd) >= own:
        return {k: v for k, v in sd.items() if k in own}
    convert = getattr(sys.modules[type(vit).__module__], "checkpoint_filter_fn", None)
    return convert(sd, vit) if convert is not None else sd


def load_encoder_weights(model, source: str) -> dict:
    """Fill `model.pretrained` (a `TimmEncoder`) with the weights `source` names; returns {"path", "sha256"} of the
    file loaded (what a checkpoint records)."""
    from .read import file_sha256

    encoder = model.config.encoder
    if not model.config.is_timm:
        raise CheckpointError(f"encoder_checkpoint {display(source)}: encoder {encoder} is not a timm backbone (its "
                              "weights come with init_checkpoint)")
    path = encoder_file(str(source), encoder)
    obj, _ = read_checkpoint(path)
    sd = obj.get("state_dict", obj) if isinstance(obj.get("state_dict"), dict) else obj
    vit = model.pretrained.vit
    try:
        sd = _timm_layout(sd, vit)
        missing, unexpected = vit.load_state_dict(sd, strict=False)
    except (RuntimeError, KeyError, ValueError) as e:  # shape mismatches, a converter that met other keys
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        raise CheckpointError(f"{display(path)}: does not fit the {encoder} encoder ({first})") from None
    if missing or unexpected:
        shown = ", ".join(display(k)[:60] for k in (missing or unexpected)[:3])
        raise CheckpointError(f"{display(path)}: does not fit the {encoder} encoder ({len(missing)} missing, "
                              f"{len(unexpected)} unexpected keys, e.g. {shown})")
    return {"path": str(path), "sha256": file_sha256(path)}
