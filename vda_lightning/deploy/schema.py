"""The export sidecar's schema (`<graph>.onnx.json`, written by `onnx_export.export_onnx`) and the checks that tie
it to its graph, applied by `sidecar.read_sidecar` before any value of the sidecar is used.

1. Header: a JSON object, `format` "vda-lightning-export", `version` an integer 1..VERSION (a newer one is named).
2. Schema (`Sidecar`, pydantic strict mode through `vda_lightning.trust.validate`): every field typed and bounded;
   `model_config` is a `ModelConfig` dict (`checkpoints.metadata.ModelConfigDict`: encoder of the registry, sizes
   in range, `layer_idx` / `out_channels` of four).
3. Consistency: the model config is its encoder's registry architecture (a graph is fed, and its streaming caches
   allocated, from it); `inputs` / `outputs` are exactly the names and symbolic shapes `signatures.graph_io` gives
   for that graph kind and config (so `features: 1e7` in a streaming sidecar cannot size a cache); the input
   contract is the one this version feeds the model; `file` is the graph's name.
4. Role (`check_role`): the graph the sidecar describes is the one the reader expects (encoder, head, stream,
   video), under its own file name.

Torch-free. Every failure is one `SidecarError` line naming the sidecar (or the graph) and the place in it.
"""
from __future__ import annotations

import os
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field
from typing_extensions import NotRequired, TypedDict

from ..checkpoints.metadata import ModelConfigDict, check_architecture
from ..trust import display, validate
from .signatures import FILE_NAMES, SYMBOLS, graph_io

FORMAT = "vda-lightning-export"
VERSION = 1
KINDS = tuple(FILE_NAMES)  # video, encoder, head, stream
ROLE = {"video": "whole-model graph", "encoder": "encoder graph", "head": "head graph", "stream": "streaming graph"}
MAX_DIM = 1 << 16


class SidecarError(ValueError):
    """A missing, unreadable or mismatched sidecar; the message is one line naming the file."""


Text = Annotated[str, Field(max_length=1000)]
Name = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.+-]+$")]
FileName = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[^/\\\x00-\x1f\x7f]+\.onnx$")]
Hex64 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Symbol = Literal[SYMBOLS]  # type: ignore[valid-type]
Dim = Annotated[int, Field(ge=1, le=MAX_DIM)] | Annotated[str, Field(max_length=64, pattern=r"^[a-z0-9*()/]+$")]
Float = Annotated[float, Field(allow_inf_nan=False)]
Count = Annotated[int, Field(ge=0, le=MAX_DIM)]


class TensorSpec(TypedDict):
    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]
    dtype: Literal["float32"]
    shape: Annotated[list[Dim], Field(min_length=1, max_length=8)]


class AxisRange(TypedDict):
    min: Count
    max: Count | None
    meaning: Text


class SourceCheckpoint(TypedDict):
    path: Annotated[str, Field(min_length=1, max_length=4096)]
    sha256: Hex64


class ExportCheck(TypedDict):
    sizes: Annotated[dict[Symbol, Count], Field(max_length=len(SYMBOLS))]
    inputs: Annotated[dict[Name, Annotated[list[Count], Field(max_length=8)]], Field(max_length=64)]
    max_rel_diff: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    worst_output: Name
    finite: bool


class Contract(TypedDict):
    """`InputContract.to_dict()` (models/input_contract.py)."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]
    patch_size: Annotated[int, Field(ge=1, le=1024)]
    mean: Annotated[list[Float], Field(min_length=3, max_length=3)]
    std: Annotated[list[Annotated[float, Field(gt=0, allow_inf_nan=False)]], Field(min_length=3, max_length=3)]
    input_size: Annotated[int, Field(ge=1, le=MAX_DIM)]
    resize_method: Text
    interpolation: Text
    max_aspect: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    aspect_scale: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    value_range: Annotated[list[Float], Field(min_length=2, max_length=2)]
    channel_order: Text
    output_resize: Text


class InputContractDoc(TypedDict):
    """`sidecar.input_contract(config)`: a readable statement plus the contract itself under "contract"."""

    color: Text
    value_range: Annotated[list[Float], Field(min_length=2, max_length=2)]
    mean: Annotated[list[Float], Field(min_length=3, max_length=3)]
    std: Annotated[list[Float], Field(min_length=3, max_length=3)]
    patch: Annotated[int, Field(ge=1, le=1024)]
    resize: Annotated[dict[Name, Text | Annotated[int, Field(ge=0, le=MAX_DIM)] | Float], Field(max_length=16)]
    output: Text
    contract: Contract


class Sidecar(TypedDict):
    format: Literal[FORMAT]  # type: ignore[valid-type]
    version: Annotated[int, Field(ge=1, le=VERSION)]
    file: FileName
    sha256: Hex64
    graph: Literal[KINDS]  # type: ignore[valid-type]
    precision: Literal["fp32", "fp16"]
    model_config: ModelConfigDict
    input_contract: InputContractDoc
    inputs: Annotated[dict[Name, TensorSpec], Field(min_length=1, max_length=64)]
    outputs: Annotated[dict[Name, TensorSpec], Field(min_length=1, max_length=64)]
    # What the export recorded about itself: read by people, not by the backend; typed all the same.
    dynamic_axes: NotRequired[Annotated[dict[Symbol, AxisRange], Field(max_length=len(SYMBOLS))]]
    opset: NotRequired[Annotated[int, Field(ge=1, le=1000)]]
    exporter: NotRequired[Literal["torchscript", "dynamo"]]
    versions: NotRequired[Annotated[dict[Annotated[str, Field(max_length=128)], Text], Field(max_length=32)]]
    source_checkpoint: NotRequired[SourceCheckpoint | None]
    export_seconds: NotRequired[Annotated[float, Field(ge=0, allow_inf_nan=False)]]
    export_check: NotRequired[Annotated[list[ExportCheck], Field(max_length=16)]]
    traced_at: NotRequired[Annotated[dict[Symbol, Count], Field(max_length=len(SYMBOLS))]]


def _preview(value: Any) -> str:
    text = display(repr(value))
    return text if len(text) <= 60 else text[:57] + "..."


def check_header(doc: Any, side) -> None:
    """Format and version first, so that another file or a newer export is named as such."""
    if not isinstance(doc, dict):
        raise SidecarError(f"{display(side)}: not a vda-lightning export sidecar (a JSON {type(doc).__name__})")
    if doc.get("format") != FORMAT:
        raise SidecarError(f"{display(side)}: not a vda-lightning export sidecar (format "
                           f"{_preview(doc.get('format'))})")
    version = doc.get("version")
    if type(version) is not int or version < 1:
        raise SidecarError(f"{display(side)}: version {_preview(version)} is not a positive integer")
    if version > VERSION:
        raise SidecarError(f"{display(side)}: sidecar version {version} is newer than this vda-lightning reads "
                           f"({VERSION})")


def check_sidecar(doc: Any, side) -> dict:
    """The sidecar document `doc` (parsed from `side`) checked: header, schema, consistency (module docstring).
    Returns the validated document (a plain dict)."""
    check_header(doc, side)
    data = validate(Sidecar, doc, display(side), SidecarError)
    kind = data["graph"]
    config = check_architecture(data["model_config"], f"{display(side)}: model_config", SidecarError)
    if kind != "video" and data["file"] != FILE_NAMES[kind]:
        raise SidecarError(f"{display(side)}: file {_preview(data['file'])} is not the name of the {ROLE[kind]} "
                           f"({FILE_NAMES[kind]})")
    inputs, outputs = graph_io(kind, config)
    for place, want in (("inputs", inputs), ("outputs", outputs)):
        got = {name: spec["shape"] for name, spec in data[place].items()}
        if got != want:
            raise SidecarError(f"{display(side)}: {place}: {_io_difference(got, want)}, not those of the {ROLE[kind]} "
                               f"of a {config.encoder} model")
    contract = config.input_contract().to_dict()
    if data["input_contract"]["contract"] != contract:
        field = next(k for k in contract if data["input_contract"]["contract"].get(k) != contract[k])
        raise SidecarError(f"{display(side)}: input_contract.contract.{field} is "
                           f"{_preview(data['input_contract']['contract'].get(field))}; this vda-lightning feeds "
                           f"the model {_preview(contract[field])} (re-export with this version)")
    return data


def _io_difference(got: dict, want: dict) -> str:
    extra = [n for n in got if n not in want]
    if extra:
        return f"names {_preview(extra[0])}"
    missing = [n for n in want if n not in got]
    if missing:
        return f"lacks {missing[0]}"
    name = next(n for n in want if got[n] != want[n])
    return f"{name} has shape {_preview(got[name])} instead of {want[name]}"


def check_role(data: dict, graph_path, kind: str | None = None) -> None:
    """The graph a checked sidecar describes is the `kind` one (when given) and sits under its own file name."""
    graph_path = os.fspath(graph_path)
    described = data["graph"]
    if kind is not None and described != kind:
        raise SidecarError(f"{display(graph_path)}: is the {ROLE[described]} of an export (its sidecar says "
                           f"{described}), not the {ROLE[kind]} expected here")
    name = os.path.basename(graph_path)
    if described != "video" and name != FILE_NAMES[described]:
        raise SidecarError(f"{display(graph_path)}: is the {ROLE[described]} {FILE_NAMES[described]} (its sidecar "
                           f"says so) under another name")

