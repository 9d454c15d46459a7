"""Weights by name: `hf://ORG/REPO[/FILE][@REVISION]` and the published models' short names, turned into a local file.

`PUBLISHED_MODELS` is THE table of short names (docs/models.md is checked against it by tests/test_hub.py). The
repositories and file names are those the published READMEs link: Video Depth Anything's README and
`metric_depth/README.md` (`depth-anything/Video-Depth-Anything-*`, `Metric-Video-Depth-Anything-*`), Depth Anything
V2's README and `metric_depth/README.md` (`Depth-Anything-V2-*`, `Depth-Anything-V2-Metric-{Hypersim,VKITTI}-*`),
and the transformers ports on the same organisation (`Depth-Anything-V2-*-hf`, `Metric-{Indoor,Outdoor}-*-hf`).

`checkpoint_path(name)` is where every name becomes a file (`checkpoints.read` calls it, so `load_model`,
`file_sha256` and every command's `--checkpoint`, `init_checkpoint`, `teacher_checkpoint` get it at once):

* a short name or an `hf://` name is fetched with `huggingface_hub.hf_hub_download`, so its cache, `HF_HOME` /
  `HF_HUB_CACHE`, `HF_ENDPOINT`, `HF_TOKEN` and revisions apply; the environment is read at each call (not when
  huggingface_hub was imported), and `HF_HUB_OFFLINE=1` answers from the cache alone;
* `hf://ORG/REPO` without a file takes the table's file for a published repository, else our export layout
  (`model.safetensors` with `config.json` beside it: `checkpoints.hub_format`);
* a folder holding `model.safetensors` (a `vda export --format hub` folder) is that file;
* anything else is a plain path, returned as it is.

Short names always mean the Hub (a local file of that name is `./vda-small`). Every failure is one
`CheckpointError` line naming the repository and the file: not found, offline and not cached (with the command
that fetches it), a transfer that broke off (huggingface_hub keeps a partial download out of its cache).
Torch-free; huggingface_hub is imported on first use.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..trust import display
from .read import CheckpointError

HUB_PREFIX = "hf://"
EXPORT_FILE = "model.safetensors"  # our `vda export --format hub` weights
EXPORT_CONFIG = "config.json"
DEFAULT_MODEL = "vda-small"  # `vda infer` without --checkpoint


@dataclass(frozen=True)
class PublishedModel:
    repo: str      # Hugging Face repository
    filename: str  # the weights file in it
    layout: str    # "published" (the authors' .pth key layout) or "transformers" (DepthAnythingForDepthEstimation)
    kind: str      # what it predicts: "relative" or "metric"


def _published() -> dict[str, PublishedModel]:
    sizes = {"small": "vits", "base": "vitb", "large": "vitl"}
    table: dict[str, PublishedModel] = {}
    for size, enc in sizes.items():
        cap = size.capitalize()
        table[f"vda-{size}"] = PublishedModel(f"depth-anything/Video-Depth-Anything-{cap}",
                                              f"video_depth_anything_{enc}.pth", "published", "relative")
        table[f"vda-metric-{size}"] = PublishedModel(f"depth-anything/Metric-Video-Depth-Anything-{cap}",
                                                     f"metric_video_depth_anything_{enc}.pth", "published", "metric")
        table[f"dav2-{size}"] = PublishedModel(f"depth-anything/Depth-Anything-V2-{cap}",
                                               f"depth_anything_v2_{enc}.pth", "published", "relative")
        for scenes, repo_scenes in (("hypersim", "Hypersim"), ("vkitti", "VKITTI")):
            table[f"dav2-metric-{scenes}-{size}"] = PublishedModel(
                f"depth-anything/Depth-Anything-V2-Metric-{repo_scenes}-{cap}",
                f"depth_anything_v2_metric_{scenes}_{enc}.pth", "published", "metric")
    for size in sizes:  # the transformers ports: Hypersim-trained = Indoor, Virtual KITTI 2-trained = Outdoor
        cap = size.capitalize()
        table[f"dav2-{size}-hf"] = PublishedModel(f"depth-anything/Depth-Anything-V2-{cap}-hf", EXPORT_FILE,
                                                  "transformers", "relative")
        for scenes, where in (("hypersim", "Indoor"), ("vkitti", "Outdoor")):
            table[f"dav2-metric-{scenes}-{size}-hf"] = PublishedModel(
                f"depth-anything/Depth-Anything-V2-Metric-{where}-{cap}-hf", EXPORT_FILE, "transformers", "metric")
    return table


PUBLISHED_MODELS: dict[str, PublishedModel] = _published()
_BY_REPO = {m.repo: m for m in PUBLISHED_MODELS.values()}

# Hugging Face repository names: letters, digits, '-', '_', '.', at most 96 characters, no '--' or '..', not
# starting or ending with '-' or '.' (huggingface_hub.utils.validate_repo_id's rule).
_REPO_PART = re.compile(r"^(?!.*(--|\.\.))[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$")
_REVISION = re.compile(r"^[A-Za-z0-9._/-]{1,200}$")
_FILE_PART = re.compile(r"^[^\x00-\x1f\x7f\\]{1,255}$")


@dataclass(frozen=True)
class HubRef:
    """One file (or, with `filename` None, the default file) of a Hub repository at a revision (None: main)."""

    repo_id: str
    filename: str | None = None
    revision: str | None = None

    def __str__(self) -> str:
        file = f"/{self.filename}" if self.filename else ""
        return f"{HUB_PREFIX}{self.repo_id}{file}" + (f"@{self.revision}" if self.revision else "")

    @property
    def weights_file(self) -> str:
        """The file to fetch: the named one, the published repository's, or our export's `model.safetensors`."""
        if self.filename:
            return self.filename
        published = _BY_REPO.get(self.repo_id)
        return published.filename if published else EXPORT_FILE


def parse_hub_name(text) -> HubRef | None:
    """`text` as a Hub reference: a short name of `PUBLISHED_MODELS` or `hf://ORG/REPO[/FILE][@REVISION]`; None for
    anything else (a plain path). A malformed `hf://` name is a CheckpointError saying what is wrong with it."""
    if not isinstance(text, str):
        return None
    if text in PUBLISHED_MODELS:
        model = PUBLISHED_MODELS[text]
        return HubRef(model.repo, model.filename)
    if not text.startswith(HUB_PREFIX):
        return None
    rest, revision = text[len(HUB_PREFIX):], None
    if "@" in rest:
        rest, revision = rest.split("@", 1)
        if not _REVISION.match(revision) or ".." in revision.split("/"):
            raise CheckpointError(f"{display(text)}: the revision after '@' must be a branch, tag or commit "
                                  "(letters, digits, '.', '_', '-', '/')")
    parts = rest.split("/")
    usage = "expected hf://ORG/REPO[/FILE][@REVISION]"
    if len(parts) < 2 or not all(_REPO_PART.match(p) for p in parts[:2]):
        raise CheckpointError(f"{display(text)}: not a Hugging Face repository name ({usage})")
    file_parts = parts[2:]
    if any(p in ("", ".", "..") or not _FILE_PART.match(p) for p in file_parts):
        raise CheckpointError(f"{display(text)}: the file part is not a path inside the repository ({usage})")
    return HubRef("/".join(parts[:2]), "/".join(file_parts) or None, revision)


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in ("1", "ON", "YES", "TRUE")


def hub_settings() -> dict:
    """huggingface_hub's settings as the environment says them now: endpoint, cache folder, offline."""
    cache = os.environ.get("HF_HUB_CACHE")
    if not cache and os.environ.get("HF_HOME"):
        cache = os.path.join(os.environ["HF_HOME"], "hub")
    return {"endpoint": (os.environ.get("HF_ENDPOINT") or "").rstrip("/") or None,
            "cache_dir": os.path.expanduser(os.path.expandvars(cache)) if cache else None,
            "local_files_only": _truthy("HF_HUB_OFFLINE") or _truthy("TRANSFORMERS_OFFLINE")}


def _fetch_command(ref: HubRef, filename: str) -> str:
    revision = f" --revision {ref.revision}" if ref.revision else ""
    return f"hf download {ref.repo_id} {filename}{revision}"


def _hub_error(error: Exception, ref: HubRef, filename: str, settings: dict) -> CheckpointError:
    """One line for whatever huggingface_hub raised, naming the repository and the file."""
    from huggingface_hub import errors as hf

    where = f"{ref}: file {filename} of repository {ref.repo_id}" + (f" at revision {ref.revision}"
                                                                      if ref.revision else "")
    endpoint = settings["endpoint"] or "https://huggingface.co"
    if isinstance(error, hf.LocalEntryNotFoundError):  # offline, or the Hub unreachable, and not in the cache
        why = "HF_HUB_OFFLINE is set" if settings["local_files_only"] else f"{endpoint} cannot be reached"
        return CheckpointError(f"{where} is not in the Hugging Face cache and {why}; fetch it first "
                               f"(`{_fetch_command(ref, filename)}` where the Hub is reachable, same HF_HOME)")
    if isinstance(error, hf.GatedRepoError):
        return CheckpointError(f"{where}: the repository is gated on {endpoint}; accept its terms and set HF_TOKEN")
    if isinstance(error, hf.RepositoryNotFoundError):
        return CheckpointError(f"{where}: no such repository on {endpoint} (or it is private: set HF_TOKEN)")
    if isinstance(error, hf.RevisionNotFoundError):
        return CheckpointError(f"{where}: no revision {ref.revision or 'main'} in that repository on {endpoint}")
    if isinstance(error, hf.EntryNotFoundError):
        return CheckpointError(f"{where}: the repository has no such file on {endpoint}")
    detail = " ".join(str(error).split())[:200] or type(error).__name__
    return CheckpointError(f"{where}: download from {endpoint} failed ({detail}); nothing was cached, run again")


def hub_file(ref: HubRef, filename: str | None = None, required: bool = True) -> Path | None:
    """The local path of one file of `ref`'s repository (`filename`, else `ref.weights_file`), fetched through
    huggingface_hub's cache; None for a missing optional file (`required=False`)."""
    import httpx2
    from huggingface_hub import errors as hf
    from huggingface_hub import hf_hub_download

    filename = filename or ref.weights_file
    settings = hub_settings()
    try:
        return Path(hf_hub_download(ref.repo_id, filename, revision=ref.revision, **settings))
    except (hf.EntryNotFoundError, hf.HfHubHTTPError, hf.OfflineModeIsEnabled, httpx2.HTTPError, OSError,
            ValueError) as e:
        if not required and isinstance(e, hf.EntryNotFoundError):
            return None  # offline, a missing optional file cannot be told from one never fetched
        raise _hub_error(e, ref, filename, settings) from None


def checkpoint_path(name) -> Path:
    """The local file a checkpoint name stands for (the module docstring): Hub names fetched, an export folder's
    `model.safetensors`, any other path as it is."""
    ref = parse_hub_name(name) if isinstance(name, str) else None
    if ref is None:
        path = Path(name)
        if path.is_dir() and (path / EXPORT_FILE).is_file():
            return path / EXPORT_FILE
        return path
    weights = hub_file(ref)
    if ref.weights_file == EXPORT_FILE:  # our export layout: its config.json beside it, when there is one
        hub_file(ref, EXPORT_CONFIG, required=False)
    return weights


def is_hub_name(name) -> bool:
    """Whether `name` is fetched from the Hub (a short name or hf://...), without fetching it."""
    return isinstance(name, str) and (name in PUBLISHED_MODELS or name.startswith(HUB_PREFIX))
