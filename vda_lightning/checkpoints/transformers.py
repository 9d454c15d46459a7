"""transformers' Depth Anything V2 files in and out: a `DepthAnythingForDepthEstimation` `model.safetensors` (the
`depth-anything/Depth-Anything-V2-*-hf` repositories) with the `config.json` beside it, read through the trust
boundary, and `vda export --format transformers` writing such a folder from our image model.

The key adapter and the config mapping live beside the models (`models/depth_anything_hf.py`, whose docstring maps
every key); here: the config.json schema (pydantic strict, one line), the file's model config and max_depth, and
the writer. `load_model` recognises the layout from the keys wherever a checkpoint is read (`load.py`).
Without a config.json the encoder size comes from the shapes, the taps from our registry, the kind is unknown
(relative unless told: `metric=` / `dav2_max_depth=`), as for a published `.pth`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import ConfigDict, Field
from typing_extensions import TypedDict

from ..models import ModelConfig
from ..models.depth_anything_hf import config_from_transformers, transformers_to_dav2
from ..trust import display, read_json, validate
from .metadata import Size
from .read import CheckpointError

CONFIG, WEIGHTS = "config.json", "model.safetensors"
Number = Annotated[float, Field(allow_inf_nan=False)] | int
Four = Field(min_length=4, max_length=4)


class TransformersBackbone(TypedDict, total=False):
    """`backbone_config` of a transformers config.json (Dinov2Config; other keys are transformers' own)."""

    __pydantic_config__ = ConfigDict(extra="allow")  # type: ignore[misc]
    model_type: Literal["dinov2"]
    hidden_size: Size
    num_hidden_layers: Size
    num_attention_heads: Size
    mlp_ratio: Number
    hidden_act: Annotated[str, Field(max_length=64)]
    layer_norm_eps: Number
    image_size: Size | Annotated[list[Size], Field(max_length=2)]
    patch_size: Size | Annotated[list[Size], Field(max_length=2)]
    qkv_bias: bool
    use_swiglu_ffn: bool
    apply_layernorm: bool
    num_channels: Size
    out_indices: Annotated[list[Annotated[int, Field(ge=1, le=1 << 16)]], Four] | None
    out_features: Annotated[list[Annotated[str, Field(pattern=r"^stage[1-9][0-9]{0,4}$")]], Four] | None


class TransformersConfig(TypedDict, total=False):
    """A transformers `DepthAnythingConfig` config.json: the keys the network's shape and output depend on."""

    __pydantic_config__ = ConfigDict(extra="allow")  # type: ignore[misc]
    model_type: Literal["depth_anything"]
    backbone_config: TransformersBackbone | None
    reassemble_hidden_size: Size
    reassemble_factors: Annotated[list[Number], Four]
    neck_hidden_sizes: Annotated[list[Size], Four]
    fusion_hidden_size: Size
    head_in_index: int
    head_hidden_size: Size
    patch_size: Size | Annotated[list[Size], Field(max_length=2)]
    depth_estimation_type: Literal["relative", "metric"]
    max_depth: Annotated[float, Field(gt=0, le=1e6, allow_inf_nan=False)] | Annotated[int, Field(gt=0, le=10**6)] | None


@dataclass(frozen=True)
class TransformersFile:
    """What a transformers checkpoint's config.json says: our model config (None without a config.json) and the
    head's max_depth (the factor on sigmoid(z) for a metric model, on ReLU(z) for a relative one)."""

    config: ModelConfig | None
    max_depth: float = 1.0

    @property
    def metric(self) -> bool | None:
        return None if self.config is None else self.config.metric


def transformers_file(weights: str | Path) -> TransformersFile:
    """The config.json beside a transformers `model.safetensors`, checked (schema, then the architecture against
    our registry); a CheckpointError naming it, in one line, when it is not a Depth Anything V2 config we run."""
    path = Path(weights).parent / CONFIG
    if not path.exists():
        return TransformersFile(None)
    doc = read_json(path, "transformers config", error=CheckpointError)
    if not isinstance(doc, dict) or doc.get("model_type") != "depth_anything":
        found = doc.get("model_type") if isinstance(doc, dict) else type(doc).__name__
        raise CheckpointError(f"{display(path)}: beside a transformers Depth Anything state dict, but its model_type "
                              f"is {display(str(found))[:40]!r}, not 'depth_anything'")
    checked = validate(TransformersConfig, doc, display(path), CheckpointError)
    try:
        config, max_depth = config_from_transformers(checked)
    except ValueError as e:
        raise CheckpointError(f"{display(path)}: {e}") from None
    return TransformersFile(config, max_depth)


def from_transformers(sd: dict, weights: str | Path) -> dict:
    """A transformers state dict read from `weights` in our image layout (`models.depth_anything_hf`), its
    relative max_depth folded; a CheckpointError naming the file and the missing / unexpected key patterns."""
    info = transformers_file(weights)
    try:
        return transformers_to_dav2(sd, info.max_depth, bool(info.metric))
    except ValueError as e:
        raise CheckpointError(f"{display(weights)}: {e}") from None


def source_is_image(path: str | Path) -> bool:
    """Whether a checkpoint file holds an image model (DAv2 or transformers layout), not a video one."""
    from ..models.depth_anything import is_image_state_dict
    from ..models.depth_anything_hf import is_transformers_state_dict
    from .adapt import dataparallel_prefix
    from .read import read_checkpoint

    obj, _ = read_checkpoint(path)
    if isinstance(obj.get("state_dict"), dict):  # a vda fit (Lightning) checkpoint: always a video model
        return False
    sd = dataparallel_prefix(obj)
    return is_image_state_dict(sd) or is_transformers_state_dict(sd)


def write_transformers(model, path: str | Path, source: str | Path | None = None) -> Path:
    """`vda export --format transformers`: the folder `path` with `model.safetensors` (transformers' key names,
    float32) and `config.json`, which `DepthAnythingForDepthEstimation.from_pretrained(path)` reads. The image model
    only: a video checkpoint's temporal layers have no place there (refused, naming the file)."""
    from safetensors.torch import save_file

    from ..io import atomic_path, write_json_atomic
    from ..models import DepthAnythingV2
    from ..models.depth_anything_hf import dav2_to_transformers, transformers_config

    if source is not None and not source_is_image(source):
        raise CheckpointError(f"{display(source)}: a Video Depth Anything checkpoint; transformers' "
                              "DepthAnythingForDepthEstimation is the image model and has no temporal layers")
    if not isinstance(model, DepthAnythingV2):
        raise CheckpointError(f"--format transformers takes a Depth Anything V2 image model, not "
                              f"{type(model).__name__}")
    config = model.config
    if getattr(config, "is_timm", False) or getattr(config, "patch_size", 14) != 14:
        raise CheckpointError(f"--format transformers: encoder {config.encoder} is not one of the DINOv2 sizes "
                              "transformers' Depth Anything V2 has")
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise CheckpointError(f"{display(out)}: --format transformers writes a folder, and this is a file")
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / WEIGHTS) as tmp:
        save_file(dav2_to_transformers(model.state_dict()), str(tmp), metadata={"format": "pt"})
    write_json_atomic(out / CONFIG, transformers_config(config, getattr(model, "max_depth", None)))
    return out
