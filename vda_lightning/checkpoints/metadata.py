"""Schemas of what our files say about themselves, checked before any value is used (the trust boundary's rule 1,
`vda_lightning.trust.schema`): the model config (stored by every writer: `save_model`'s safetensors metadata and
`<file>.json` sidecar, the Lightning `checkpoint["vda"]`, every export sidecar), the Lightning `"vda"` entry with
its referenced encoder, the EMA state `checkpoint["vda_ema"]`, and the safetensors metadata strings.

A model config is more than well-typed: a model is *built* from it before any weight is read, so a config naming
`features: 10000000` would allocate for ever. Every architecture field must therefore equal the registry entry
of its encoder (`models.configs.MODEL_CONFIGS`: the published `run.py` table plus vitt); only `metric` and
`canonical_focal` vary between our files. A timm backbone (`encoder` a timm DINOv2 / DINOv3 name,
`models/backbones.py`) may be narrower or shallower than its name (tests train small ones), never wider or deeper;
its head widths and patch must be what `models.configs.get_config` derives, its taps four blocks in order.

Torch-free (the EMA tensors are checked with torch imported on use).
"""
from __future__ import annotations

import os
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field
from typing_extensions import NotRequired, TypedDict

from ..models.backbones import MAX_NAME, is_timm_name
from ..models.configs import MODEL_CONFIGS, ModelConfig, check_taps, get_config
from ..trust import display, parse_json, read_json, validate

ENCODERS = tuple(MODEL_CONFIGS)
ARCHITECTURE = ("embed_dim", "depth", "num_heads", "layer_idx", "features", "out_channels", "num_frames")
MAX_SIZE = 1 << 16  # no published or test model has a width, depth or channel count near it


def _as_list(value: Any) -> Any:
    """A config written by `asdict` and saved by torch keeps its tuples; JSON has lists. Both are accepted."""
    return list(value) if isinstance(value, tuple) else value


Size = Annotated[int, Field(ge=1, le=MAX_SIZE)]
Index = Annotated[int, Field(ge=0, le=MAX_SIZE)]
Hex64 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


def _encoder_name(value: str) -> str:
    if value not in MODEL_CONFIGS and not is_timm_name(value):
        raise ValueError(f"not a known encoder (one of {', '.join(ENCODERS)} or a timm DINOv2 / DINOv3 ViT name)")
    return value


EncoderName = Annotated[str, Field(max_length=MAX_NAME), AfterValidator(_encoder_name)]


class ModelConfigDict(TypedDict):
    """`ModelConfig.to_dict()` (models/configs.py)."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]
    encoder: EncoderName
    embed_dim: Size
    depth: Size
    num_heads: Size
    layer_idx: Annotated[list[Index], BeforeValidator(_as_list), Field(min_length=4, max_length=4)]
    features: Size
    out_channels: Annotated[list[Size], BeforeValidator(_as_list), Field(min_length=4, max_length=4)]
    num_frames: NotRequired[Annotated[int, Field(ge=1, le=1024)]]
    metric: NotRequired[bool]
    canonical_focal: NotRequired[Annotated[float, Field(gt=0, le=1e6, allow_inf_nan=False)] | None]
    patch_size: NotRequired[Literal[14, 16]]
    timm_version: NotRequired[Annotated[str, Field(pattern=r"^[0-9A-Za-z.+_-]{1,40}$")] | None]


class EncoderSource(TypedDict):
    """Where a checkpoint that does not embed its frozen encoder reads it from (training/tasks/base.py)."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]
    path: Annotated[str, Field(min_length=1, max_length=4096)]
    sha256: Hex64


class LightningInfo(TypedDict, total=False):
    """`checkpoint["vda"]` of a `vda fit` checkpoint (training/tasks/base.py `on_save_checkpoint`)."""

    config: ModelConfigDict
    encoder_source: EncoderSource | None
    prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.]{0,64}$")]


class SafetensorsMetadata(TypedDict, total=False):
    """What `save_model` writes into a safetensors header (other keys, e.g. "format", are left alone)."""

    encoder: EncoderName
    metric: Annotated[str, Field(pattern=r"^(?i:true|false)$")]
    config: Annotated[str, Field(max_length=1 << 16)]


class EMAState(TypedDict):
    """`checkpoint["vda_ema"]` (training/ema.py): the decay and one tensor per head parameter."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]
    decay: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)]
    shadow: Annotated[dict[Annotated[str, Field(max_length=1024)], Any], Field(min_length=1, max_length=1 << 16)]


def check_architecture(config: dict, what: str, error: type[Exception]) -> ModelConfig:
    """The `ModelConfig` of a schema-checked config dict whose architecture is its encoder's registry entry (or,
    for a timm backbone, what its name derives: `_timm_reference`)."""
    if is_timm_name(config["encoder"]):
        reference = _timm_reference(config, what, error)
    else:
        reference = MODEL_CONFIGS[config["encoder"]].to_dict()
    for name in ARCHITECTURE + ("patch_size",):
        if name in config and _as_list(config[name]) != _as_list(reference[name]):
            raise error(f"{what}.{name}: {_as_list(config[name])} is not the {config['encoder']} architecture's "
                        f"{_as_list(reference[name])}")
    return ModelConfig.from_dict(config)


def _timm_reference(config: dict, what: str, error: type[Exception]) -> dict:
    """The config a timm name derives at the stored width, depth and heads, each at most the name's own (a file
    cannot make us build a larger model than its name); the stored taps, checked to be four blocks in order."""
    name = config["encoder"]
    full = get_config(name).to_dict()
    sizes = {k: int(config[k]) for k in ("embed_dim", "depth", "num_heads")}
    for key, value in sizes.items():
        if value > full[key]:
            raise error(f"{what}.{key}: {value} exceeds the {name} architecture's {full[key]}")
    try:
        reference = get_config(name, **{k: v for k, v in sizes.items() if v != full[k]}).to_dict()
        reference["layer_idx"] = list(check_taps(_as_list(config["layer_idx"]), sizes["depth"], f"{what}"))
    except (ValueError, AssertionError, RuntimeError) as e:  # timm refuses the sizes, or the taps are out of range
        raise error(f"{what}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    return reference


def model_config(value: Any, what: str, error: type[Exception]) -> ModelConfig:
    """A stored model config (dict) checked: schema, then architecture; `what` names the file and place."""
    checked = validate(ModelConfigDict, value, what, error)
    return check_architecture(checked, what, error)


def lightning_info(value: Any, path, error: type[Exception]) -> dict:
    """`checkpoint["vda"]` checked; a referenced encoder must be named by an absolute path."""
    what = f"{display(path)}: checkpoint['vda']"
    info = validate(LightningInfo, value, what, error)
    if "config" in info:
        check_architecture(info["config"], f"{what}: config", error)
    source = info.get("encoder_source")
    if source is not None and not os.path.isabs(source["path"]):
        raise error(f"{what}: encoder_source.path {display(source['path'])!r} is not an absolute path")
    return info


def safetensors_metadata(meta: Any, path, error: type[Exception]) -> tuple[dict, dict | None]:
    """(the metadata checked, its `config` parsed and checked, or None)."""
    what = f"{display(path)}: safetensors metadata"
    checked = validate(SafetensorsMetadata, meta, what, error)
    if "config" not in checked:
        return dict(meta), None
    config = parse_json(checked["config"], f"{what} config", error=error)
    model_config(config, f"{what} config", error)
    return dict(meta), config


def config_sidecar(path, error: type[Exception]) -> dict:
    """A `save_model` `<file>.pth.json`: one model config, read through the trust boundary."""
    doc = read_json(path, "config sidecar", error=error)
    model_config(doc, display(path), error)
    return doc


Count = Annotated[int, Field(ge=0, le=1 << 62)]


class TrainingCounters(TypedDict, total=False):
    """`checkpoint["vda_counters"]`: what a run skipped so far (training/tasks/base.py `on_save_checkpoint`)."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]
    skipped_nonfinite_loss: Count
    skipped_nonfinite_grad: Count
    metric_samples_without_K: Count


def training_counters(value: Any, path, error: type[Exception]) -> dict:
    """`checkpoint["vda_counters"]` checked: known names, non-negative integers (a resumed run adds to them)."""
    return validate(TrainingCounters, value, f"{display(path)}: checkpoint['vda_counters']", error)


def ema_state(value: Any, path, parameters: dict, error: type[Exception]) -> dict:
    """`checkpoint["vda_ema"]` checked against the head it will be swapped into (`parameters`: name -> tensor):
    a decay in (0, 1); names of that head only (training may have frozen some, which the EMA then leaves out);
    one finite float tensor of the parameter's shape each."""
    import torch

    what = f"{display(path)}: checkpoint['vda_ema']"
    state = validate(EMAState, value, what, error)
    for name, tensor in state["shadow"].items():
        if name not in parameters:
            raise error(f"{what}: shadow names {display(name)!r}, which the model's head lacks")
        want = parameters[name]
        if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
            raise error(f"{what}: shadow.{display(name)} is not a float tensor (got {type(tensor).__name__})")
        if tuple(tensor.shape) != tuple(want.shape):
            raise error(f"{what}: shadow.{display(name)} has shape {tuple(tensor.shape)}, the head's "
                        f"{tuple(want.shape)}")
        if not bool(torch.isfinite(tensor).all()):
            raise error(f"{what}: shadow.{display(name)} holds NaN or Inf values")
    return state
