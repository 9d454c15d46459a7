"""Read: a checkpoint file → its tensors (or Lightning checkpoint object) and metadata. No code is unpickled."""
from __future__ import annotations

import hashlib
import json
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message names the file and the cause."""


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
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
    from .sniff import sniff

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    found = sniff(path)
    if not found.loadable:
        raise CheckpointError(found.refusal(path))
    if found.kind == "safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                return {k: f.get_tensor(k) for k in f.keys()}, meta
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from None
    import torch

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
        raise CheckpointError(f"{path}: {found.detail} that cannot be read ({type(e).__name__}: {detail})"
                              ) from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a state dict, found {type(obj).__name__}")
    return obj, {}


@dataclass
class RawCheckpoint:
    """What one file holds, before any key is changed."""

    path: Path
    obj: dict                                   # a state dict, or a Lightning checkpoint ("state_dict", "vda", ...)
    metadata: dict = field(default_factory=dict)  # safetensors metadata ({} for .pth)
    sidecar: dict | None = None                 # `<file>.json` beside a .pth written by `save_model`

    @property
    def saved_config(self) -> dict | None:
        """The `ModelConfig` dict our writers stored (Lightning "vda" info, safetensors metadata, sidecar)."""
        info = self.obj.get("vda") if isinstance(self.obj.get("vda"), dict) else {}
        if "config" in info:
            return info["config"]
        if "config" in self.metadata:
            return json.loads(self.metadata["config"])
        return self.sidecar


def read(path: str | os.PathLike) -> RawCheckpoint:
    """The file's object and metadata, plus the `save_model` sidecar when there is one."""
    path = Path(path)
    obj, meta = read_checkpoint(path)
    sidecar_path = path.with_name(path.name + ".json")
    sidecar = None
    if sidecar_path.is_file():
        try:
            sidecar = json.loads(sidecar_path.read_text())
        except (OSError, ValueError) as e:
            raise CheckpointError(f"{sidecar_path}: the config sidecar of {path.name} is not readable JSON ({e})"
                                  ) from None
    return RawCheckpoint(path, obj, meta, sidecar)
