"""Models out by name: the folder `vda export CKPT --format hub OUT_DIR` writes, which the Hub serves as a model
repository, and its `config.json` read back through the trust boundary.

    OUT_DIR/model.safetensors   the published key layout (`save_model`: config in the safetensors metadata too)
    OUT_DIR/config.json         what the model is: encoder, kind, architecture, the input contract, the versions
    OUT_DIR/README.md           the model card (`hub_card.py`): YAML metadata (license, tags, datasets, metrics)

`load_model(OUT_DIR)` and `load_model("hf://ORG/NAME")` read it back (`hub.checkpoint_path` maps both to the
`model.safetensors`; `read` calls `export_config` for the `config.json` beside it). A `config.json` that does not
say `"framework": "vda-lightning"` is someone else's (a transformers repository has one too) and is left alone;
ours is checked against `ExportConfig` (pydantic strict, one line) and must agree with the safetensors metadata.
`--push-to-hub ORG/NAME [--private]` uploads the folder with huggingface_hub (`HfApi.create_repo` +
`upload_folder`) to `HF_ENDPOINT` (default the Hub), with the token huggingface_hub finds (`HF_TOKEN`, `hf auth
login`).
"""
from __future__ import annotations

import json
import os
import sys
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field
from typing_extensions import TypedDict

from ..trust import display, parse_json, read_bytes, validate
from .hub import EXPORT_CONFIG, EXPORT_FILE, hub_settings
from .metadata import ModelConfigDict, model_config
from .read import CheckpointError

FRAMEWORK = "vda-lightning"
FORMAT_VERSION = 1
MAX_CONFIG_BYTES = 1 << 20  # ours is about 1 KB


class ExportConfig(TypedDict):
    """`config.json` of a hub export (written by `export_config_dict`)."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]
    framework: Literal["vda-lightning"]
    framework_version: Annotated[str, Field(max_length=64)]
    format_version: Literal[1]
    architecture: Literal["VideoDepthAnything", "DepthAnythingV2"]
    encoder: Annotated[str, Field(max_length=128)]
    kind: Literal["relative", "metric"]
    weights: Literal["model.safetensors"]
    key_layout: Literal["published"]
    model_config: ModelConfigDict
    input_contract: Annotated[dict[Annotated[str, Field(max_length=64)], Any], Field(max_length=64)]


def framework_version() -> str:
    try:
        return package_metadata.version(FRAMEWORK)
    except package_metadata.PackageNotFoundError:
        from .. import __version__

        return __version__


def export_config_dict(model) -> dict:
    """The `config.json` of `model` (a VideoDepthAnything or a DepthAnythingV2)."""
    config = model.config
    return {"framework": FRAMEWORK, "framework_version": framework_version(), "format_version": FORMAT_VERSION,
            "architecture": type(model).__name__, "encoder": config.encoder,
            "kind": "metric" if config.metric else "relative", "weights": EXPORT_FILE, "key_layout": "published",
            "model_config": config.to_dict(), "input_contract": config.input_contract().to_dict()}


def read_export_config(path: str | os.PathLike) -> dict | None:
    """A `config.json` checked against `ExportConfig` (None when it is not ours: no `"framework":
    "vda-lightning"`); its model config checked as every stored config is (`metadata.model_config`)."""
    doc = parse_json(read_bytes(path, "config.json", MAX_CONFIG_BYTES, CheckpointError), display(path),
                     error=CheckpointError)
    if not isinstance(doc, dict) or doc.get("framework") != FRAMEWORK:
        return None
    checked = validate(ExportConfig, doc, display(path), CheckpointError)
    model_config(checked["model_config"], f"{display(path)}: model_config", CheckpointError)
    if checked["encoder"] != checked["model_config"]["encoder"] or \
            (checked["kind"] == "metric") != bool(checked["model_config"].get("metric", False)):
        raise CheckpointError(f"{display(path)}: encoder/kind ({checked['encoder']}, {checked['kind']}) disagree "
                              "with its model_config")
    return checked


def export_config(weights: Path, metadata_config: dict | None) -> dict | None:
    """The model config of the `config.json` beside an export's `model.safetensors` (None without one, or when it
    is not ours); it must be the config the safetensors metadata holds, when that holds one."""
    if weights.name != EXPORT_FILE or not (weights.parent / EXPORT_CONFIG).exists():
        return None
    checked = read_export_config(weights.parent / EXPORT_CONFIG)
    if checked is None:
        return None
    config = checked["model_config"]
    if metadata_config is not None and dict(metadata_config) != config:
        raise CheckpointError(f"{display(weights.parent / EXPORT_CONFIG)}: model_config differs from the one in "
                              f"{display(weights.name)}'s metadata (a mixed-up folder?)")
    return config


def write_hub(model, path: Path, *, source=None, push_to_hub: str | None = None, private: bool = False,
              license: str | None = None, datasets: list[str] | None = None) -> Path:
    """`vda export --format hub`: the folder `path` (module docstring); pushed when `push_to_hub` names a repo."""
    from ..io import write_text_atomic
    from .hub_card import model_card
    from .save import save_model

    out = Path(path)
    if out.exists() and not out.is_dir():
        raise CheckpointError(f"{display(out)}: --format hub writes a folder, and this is a file")
    out.mkdir(parents=True, exist_ok=True)
    save_model(model, out / EXPORT_FILE)
    config = export_config_dict(model)
    write_text_atomic(out / EXPORT_CONFIG, json.dumps(config, indent=1) + "\n")
    name = push_to_hub or out.resolve().name
    write_text_atomic(out / "README.md", model_card(config, name, source, license=license, datasets=datasets))
    if push_to_hub:
        url = push_folder(out, push_to_hub, private)
        print(f"vda-export: pushed {display(out)} to {url}", file=sys.stderr)
    return out


def push_folder(folder: Path, repo_id: str, private: bool = False) -> str:
    """Upload `folder` as the model repository `repo_id` (created when missing) on `HF_ENDPOINT`; its URL."""
    from huggingface_hub import HfApi
    from huggingface_hub import errors as hf

    from .hub import parse_hub_name

    parse_hub_name(f"hf://{repo_id}")  # ORG/NAME, refused in one line otherwise
    if repo_id.count("/") != 1:
        raise CheckpointError(f"--push-to-hub {display(repo_id)}: expected ORG/NAME")
    api = HfApi(endpoint=hub_settings()["endpoint"])
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        commit = api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type="model",
                                   commit_message=f"vda export --format hub ({FRAMEWORK} {framework_version()})")
    except (hf.HfHubHTTPError, OSError, ValueError) as e:
        detail = " ".join(str(e).split())[:200]
        raise CheckpointError(f"--push-to-hub {display(repo_id)}: upload failed ({detail})") from None
    return getattr(commit, "repo_url", None) or f"{api.endpoint}/{repo_id}"


def add_hub_options(parser) -> None:
    g = parser.add_argument_group("hub format (docs/models.md)")
    g.add_argument("--push-to-hub", metavar="ORG/NAME", default=None,
                   help="upload the folder as this model repository (HF_ENDPOINT, HF_TOKEN)")
    g.add_argument("--private", action="store_true", help="create the pushed repository private")
    g.add_argument("--license", default=None,
                   help="model card license (default: that of the published weights of this size)")
    g.add_argument("--datasets", default=None, metavar="A,B",
                   help="model card datasets (default: those the run's results name)")


def hub_options(args) -> dict:
    """The writer keyword arguments of the parsed options."""
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()] if args.datasets else None
    return {"push_to_hub": args.push_to_hub, "private": args.private, "license": args.license,
            "datasets": datasets}
