"""Read: a checkpoint file → its tensors (or Lightning checkpoint object) and metadata. No code is unpickled, and
no value the file states is used before its schema is checked (`metadata.py`): the safetensors metadata, the
`<file>.json` config sidecar, the Lightning `checkpoint["vda"]` entry, and the state dict's keys (strings)."""
from __future__ import annotations

import hashlib
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path

from ..trust import display, regular_file


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message names the file and the cause."""


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """The sha256 of a file's bytes; an existing path that is not a regular file (a FIFO would block for ever, a
    device never end) is a CheckpointError, a missing one the usual FileNotFoundError. A Hub name or an export
    folder is the file it stands for (`hub.checkpoint_path`): what was loaded is what is hashed."""
    from .hub import checkpoint_path

    path = checkpoint_path(path)
    if os.path.exists(path):
        regular_file(path, "file", error=CheckpointError)
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def read_checkpoint(path: str | os.PathLike) -> tuple[dict, dict]:
    """Raw contents of a checkpoint file: (object, safetensors metadata or {}).

    The format is told from the bytes (`sniff.py`), not the suffix; a file that holds no weights — JSON, text, an
    HTML page, a Git LFS pointer, a truncated zip, a safetensors file with a damaged header — is refused with one
    line saying what it is.
    """
    from .hub import checkpoint_path
    from .sniff import sniff

    path = checkpoint_path(path)  # a Hub name is fetched, an export folder is its model.safetensors
    if not os.path.lexists(path):
        raise CheckpointError(f"{display(path)}: no such checkpoint file")
    regular_file(path, "checkpoint", error=CheckpointError)
    found = sniff(path)
    if not found.loadable:
        raise CheckpointError(found.refusal(display(path)))
    if found.kind == "safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                return {k: f.get_tensor(k) for k in f.keys()}, meta
        except (SafetensorError, OSError, ValueError) as e:
            detail = " ".join(str(e).split())[:200]
            raise CheckpointError(f"{display(path)}: not a readable safetensors file ({detail})") from None
    import torch

    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else "unsupported pickle content"
        raise CheckpointError(
            f"{display(path)}: refused to load — the pickle needs code to run (weights_only=True): {first[:300]}. "
            "Only plain tensor checkpoints are accepted; convert it with safetensors if you trust its source."
        ) from None
    except Exception as e:  # the weights-only unpickler raises many types on garbage
        detail = (str(e).splitlines() or [type(e).__name__])[0][:200]
        raise CheckpointError(f"{display(path)}: {found.detail} that cannot be read ({type(e).__name__}: {detail})"
                              ) from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{display(path)}: expected a state dict, found {type(obj).__name__}")
    return obj, {}


def check_keys(sd: dict, path: Path, where: str) -> None:
    """Every key of a state dict is a string (the weights-only unpickler also builds dicts with other keys)."""
    for bad in (k for k in sd if not isinstance(k, str)):
        raise CheckpointError(f"{display(path)}: {where} holds a key {str(bad)[:40]!r} of type {type(bad).__name__}; "
                              "state dict keys are parameter names (strings)")


@dataclass
class RawCheckpoint:
    """What one file holds, before any key is changed; everything but the tensors schema-checked (`read`)."""

    path: Path
    obj: dict                                   # a state dict, or a Lightning checkpoint ("state_dict", "vda", ...)
    metadata: dict = field(default_factory=dict)  # safetensors metadata ({} for .pth)
    sidecar: dict | None = None                 # `<file>.json` beside a .pth written by `save_model`
    info: dict | None = None                    # `checkpoint["vda"]` of a Lightning checkpoint
    metadata_config: dict | None = None         # the safetensors metadata's "config", parsed

    @property
    def saved_config(self) -> dict | None:
        """The `ModelConfig` dict our writers stored (Lightning "vda" info, safetensors metadata, sidecar)."""
        if self.info and "config" in self.info:
            return self.info["config"]
        if self.metadata_config is not None:
            return self.metadata_config
        return self.sidecar


def read(path: str | os.PathLike) -> RawCheckpoint:
    """The file's object and metadata, plus the `save_model` sidecar when there is one; every piece of metadata
    checked against its schema (`metadata.py`), state dict keys checked to be strings. A Hub name or an export
    folder is read from the file it stands for (`hub.checkpoint_path`), its `config.json` checked beside it
    (`hub_format.export_config`)."""
    from . import metadata
    from .hub import checkpoint_path
    from .hub_format import export_config

    path = checkpoint_path(path)
    obj, meta = read_checkpoint(path)
    meta, meta_config = metadata.safetensors_metadata(meta, path, CheckpointError) if meta else ({}, None)
    info = None
    if "vda" in obj:
        info = metadata.lightning_info(obj["vda"], path, CheckpointError)
    if "state_dict" in obj and isinstance(obj["state_dict"], dict):
        check_keys(obj["state_dict"], path, "its state_dict")
    else:
        check_keys(obj, path, "its state dict")
    sidecar_path = path.with_name(path.name + ".json")
    sidecar = metadata.config_sidecar(sidecar_path, CheckpointError) if os.path.exists(sidecar_path) else None
    if sidecar is None:
        sidecar = export_config(path, meta_config)
    return RawCheckpoint(path, obj, meta, sidecar, info, meta_config)
