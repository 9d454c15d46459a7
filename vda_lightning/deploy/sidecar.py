"""The JSON sidecar written beside every exported file (`model.onnx` -> `model.onnx.json`), and its reader.

A graph alone does not say how to feed it: the sidecar holds the model config, the input contract (mean, std,
patch, resize rule), every input and output with its symbolic shape, the dynamic axes and their ranges, opset,
precision, exporter and package versions, the source checkpoint's sha256 and the graph file's own sha256 (so a
sidecar never silently describes another file), plus the parity check run at export time.

A sidecar is read through the trust boundary (`vda_lightning.trust.read_json`: size cap, strict JSON) and checked
against its schema (`schema.py`) before any value of it is used: every reader (the onnxruntime backend, the
TensorRT builder, `vda infer --backend onnxruntime`) gets one line naming the file, never a traceback.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..trust import display
from .schema import FORMAT, VERSION, SidecarError, check_role, check_sidecar

__all__ = ["FORMAT", "VERSION", "SidecarError", "file_sha256", "input_contract", "package_versions", "read_sidecar",
           "sidecar_path", "write_sidecar"]


def sidecar_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".json")


def file_sha256(path: str | os.PathLike) -> str:
    from ..checkpoints import file_sha256 as sha256

    return sha256(path)


def input_contract(config) -> dict:
    """How frames become the graph's input (published `video_depth.py` + `util/transform.py`), as data: the model
    config's `InputContract` (models/input_contract.py, the one definition), in the sidecar's readable form plus
    the contract's own `to_dict()` under "contract"."""
    from ..models.input_contract import DEFAULT_CONTRACT

    own = getattr(config, "input_contract", None)
    c = own() if callable(own) else DEFAULT_CONTRACT
    return {
        "color": c.channel_order,
        "value_range": list(c.value_range),
        "mean": list(c.mean),
        "std": list(c.std),
        "patch": c.patch_size,
        "resize": {
            "method": f"{c.interpolation} (a = -0.75, align_corners false, no antialias), before normalisation",
            "input_size": c.input_size,
            "rule": ("keep the aspect ratio; scale so that the short side reaches input_size; each side to the nearest "
                     "multiple of patch (half to even), rounded up instead when that falls below input_size"),
            "max_aspect": c.max_aspect,
            "wide_rule": (f"if max(H, W) / min(H, W) > max_aspect: input_size = round_to_patch(int(input_size * "
                          f"{c.aspect_scale} / ratio))"),
        },
        "output": ("relative disparity (metric depth for metric checkpoints), upsampled to the frame size by "
                   f"{c.output_resize}"),
        "contract": c.to_dict(),
    }


def package_versions() -> dict:
    from importlib import metadata

    out = {}
    for name in ("vda-lightning", "torch", "onnx", "onnxscript", "onnxruntime", "tensorrt"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def write_sidecar(graph_path: str | os.PathLike, info: dict) -> Path:
    """Write `<graph>.json` atomically, stamped with the graph file's sha256."""
    from ..io import write_json_atomic

    graph_path = Path(graph_path)
    data = {"format": FORMAT, "version": VERSION, "file": graph_path.name, "sha256": file_sha256(graph_path), **info}
    out = sidecar_path(graph_path)
    write_json_atomic(out, data)
    return out


def read_sidecar(graph_path: str | os.PathLike, check_hash: bool = True, kind: str | None = None) -> dict:
    """The sidecar of an exported graph, checked (`schema.check_sidecar`) before any value is used; SidecarError
    (one line naming the file) when it is missing, unreadable, of another format or version, does not fit its
    schema, describes a different file, or (with `kind`) describes another graph than the `kind` one."""
    from ..trust import read_json, regular_file

    graph_path = Path(graph_path)
    side = sidecar_path(graph_path)
    if not os.path.lexists(graph_path):
        raise SidecarError(f"{display(graph_path)}: no such exported file")
    regular_file(graph_path, "exported file", error=SidecarError)
    if not os.path.lexists(side):
        raise SidecarError(f"{display(graph_path)}: its sidecar {display(side.name)} is missing (it holds the input "
                           "contract; re-export with vda-export)")
    doc = read_json(side, "export sidecar", error=SidecarError)
    data = check_sidecar(doc, side)
    if check_hash and data["sha256"] != file_sha256(graph_path):
        raise SidecarError(f"{display(side)}: describes another file (sha256 differs from {display(graph_path.name)}); "
                           "re-export both together")
    check_role(data, graph_path, kind)
    return data
