"""Checkpoints as read → adapt → build. This docstring is THE checkpoint contract; other modules refer here.

Every file is read with `torch.load(weights_only=True)` or safetensors: a pickle that needs code to load is
refused, never executed. Half-precision files are cast to float32. The format is told from the file's bytes, not
its suffix (`sniff.py`): a file that holds no weights is refused with one line saying what it is — JSON (our config
sidecar named as such), text, an HTML page, a Git LFS pointer, an empty file, a truncated zip, a safetensors file
whose header is damaged or whose tensors run past its end.

Files `load_model` accepts (the layout is recognised from the keys, not the file name):

* published Video Depth Anything (`video_depth_anything_*.pth`, published `video_depth_anything/video_depth.py`):
  `pretrained.*` (DINOv2) + `head.*` (spatio-temporal DPT head) — our `VideoDepthAnything` layout as is;
* published Depth Anything V2 (`depth_anything_v2_*.pth`, published `depth_anything_v2/dpt.py`): `pretrained.*` +
  `depth_head.*`, no temporal modules — loaded as a video model whose fresh temporal modules have zero output
  projections (so it equals the image model frame by frame: the paper's initialisation), or as the image model;
* `.safetensors` in either layout; `save_model` adds the metadata `encoder`, `metric` and `config` (JSON of
  `ModelConfig.to_dict()`);
* `.pth` written by `save_model`: a plain state dict in the published layout (loadable by the published code),
  with the `ModelConfig` in a `<file>.json` sidecar;
* Lightning checkpoints written by `vda-fit`: `state_dict` holds `model.head.*`, plus `model.pretrained.*` only
  when the frozen encoder is embedded; `checkpoint["vda"] = {"config": ModelConfig.to_dict(), "encoder_source":
  {"path": str, "sha256": str} | None, "prefix": "model."}` — a referenced encoder is read back from
  `encoder_source["path"]` and must still have that sha256; `checkpoint["vda_ema"] = {"decay", "shadow": {head
  parameter name: tensor}}` when trained with EMA; `checkpoint["vda_counters"]` the skipped-step counters;
* a transformers `DepthAnythingForDepthEstimation` `model.safetensors` (the `*-hf` repositories) with the
  `config.json` beside it when there is one (`transformers.py`; key adapter `models/depth_anything_hf.py`): loaded
  as a published DAv2 file is (image model, video initialisation, teacher); a metric one's image model keeps its
  sigmoid x max_depth head;
* any of these saved from a `DataParallel` / DDP wrapper (`module.` prefix);
* a `vda export --format hub` folder (`model.safetensors` + `config.json`, `hub_format.py`);
* by name, wherever a path is taken (`hub.py`, resolved in `read` so `load_model`, `file_sha256` and every
  command get it): `hf://ORG/REPO[/FILE][@REVISION]` and the published models' short names (`vda-small`,
  `dav2-large`, ... : `hub.PUBLISHED_MODELS`, the one table), fetched through huggingface_hub's cache; the file
  loaded and hashed is the cached one.

The model's config comes from our metadata (sidecar, safetensors metadata, `checkpoint["vda"]`); for published
files the encoder size comes from `encoder=` or from the tensor shapes (embedding width), and `metric` from
`metric=` or the published file name (`metric_video_depth_anything_*`). Building is strict: a checkpoint that does
not fit raises one `CheckpointError` naming the file, the missing / unexpected key patterns, shape mismatches and
the encoder size its shapes suggest.

Relative or metric: the kind comes from our metadata, else a published file name, else `metric=`; a file that
says nothing loads as relative with `model.kind_source == "none"`, and `kind.resolve_kind` may probe it
(`kind` module docstring). A Depth Anything V2 metric file (`depth_anything_v2_metric_{hypersim,vkitti}_*`,
sigmoid × max_depth output) loads as a metric video model with its last convolution folded for the ReLU head
(`models.depth_anything.sigmoid_head_to_relu`).

Every piece of metadata is checked against its schema before use (`metadata.py`, through `vda_lightning.trust`):
a stored model config must be its encoder's registry architecture, a referenced encoder an absolute path with a
sha256 that the file must match before it is opened. A file that does not fit is one `CheckpointError` whose
first line names the file, the missing / unexpected module patterns (`head.motion_modules.*`) and the first shape
mismatch.

Modules: `sniff` (what a file is), `read` (file → tensors + checked metadata), `metadata` (the schemas), `adapt`
(a file's wrappers taken off: Lightning and DataParallel prefixes, half floats), `build` (config, strict build,
grouped errors), `save` (the published layout, atomically), `kind` (relative vs metric); `load_model` composes
them. The conversions between the family's own layouts (DAv2 image <-> video, the DAv2 metric head) live beside
the models, in `models/depth_anything.py`, as timm keeps each family's checkpoint filter.
"""
from ..lazy import lazy_exports

_EXPORTS = {
    "CheckpointError": "read", "RawCheckpoint": "read", "file_sha256": "read", "read": "read",
    "read_checkpoint": "read",
    "dataparallel_prefix": "adapt", "lightning_checkpoint": "adapt", "published_vda": "adapt",
    "build_model": "build", "check_state_dict": "build", "infer_encoder": "build", "model_config": "build",
    "kind_from_file": "build", "dav2_metric_max_depth": "build",
    "probe_kind": "kind", "resolve_kind": "kind", "set_kind": "kind",
    "load_image_model": "load", "load_model": "load",
    "published_state_dict": "save", "save_model": "save",
    "PUBLISHED_MODELS": "hub", "checkpoint_path": "hub", "parse_hub_name": "hub", "is_hub_name": "hub",
}
__all__ = list(_EXPORTS)
# Names resolve on first use (vda_lightning/lazy.py): `CheckpointError`, `file_sha256`, the Hub names (`hub.py`)
# and the metadata schemas (`metadata.py`, read by the export sidecars too) do not import torch.
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
