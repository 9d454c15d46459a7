"""`load_model`: read → adapt → build (the contract is in the package docstring)."""
from __future__ import annotations

import os
from pathlib import Path

import torch.nn as nn

from ..models.depth_anything import (
    DepthAnythingV2,
    VideoDepthAnything,
    dav2_to_video,
    is_image_state_dict,
    sigmoid_head_to_relu,
    video_to_image,
)
from ..models.depth_anything_hf import is_transformers_state_dict
from ..trust import display, regular_file
from . import adapt
from .build import (
    build_model,
    check_state_dict,
    dav2_metric_max_depth,
    describe,
    expected_state,
    kind_from_file,
    model_config,
)
from .read import CheckpointError, RawCheckpoint, file_sha256, read
from .transformers import from_transformers, transformers_file


def _published_layout(raw: RawCheckpoint, follow_reference: bool = True) -> dict:
    """Any file's model tensors in the published layout, float32, the referenced encoder filled in (only from the
    checkpoint the user named: a referenced encoder file's own reference is not followed)."""
    obj = raw.obj
    if isinstance(obj.get("state_dict"), dict):  # Lightning checkpoint
        sd, info = adapt.lightning_checkpoint(obj, raw.path, raw.info or {})
    else:
        sd, info = obj, {}
    sd = adapt.published_vda(adapt.dataparallel_prefix(sd))
    if not sd:
        raise CheckpointError(f"{display(raw.path)}: holds no tensors")
    if is_transformers_state_dict(sd):  # a transformers DepthAnythingForDepthEstimation (`*-hf`): our image layout
        sd = from_transformers(sd, raw.path)
    if not any(k.startswith(("pretrained.", "head.", "depth_head.")) for k in sd):
        keys = ", ".join(display(k)[:60] for k in list(sd)[:3])
        raise CheckpointError(f"{display(raw.path)}: holds {len(sd)} tensors, none of a (Video) Depth Anything model "
                              f"(keys like {keys})")
    if follow_reference and info.get("encoder_source") and not any(k.startswith("pretrained.") for k in sd):
        sd.update(_referenced_encoder(info["encoder_source"], raw.path))
    return sd


def _referenced_encoder(source: dict, ckpt: Path) -> dict:
    """The `pretrained.*` tensors of the file a checkpoint references (`checkpoint["vda"]["encoder_source"]`,
    schema-checked by `read`: an absolute path and a sha256). The path comes from inside a file, so it is opened
    only when it is a regular file whose bytes have that sha256: the checkpoint cannot make us read (or quote in
    an error) any file but the one it was trained from."""
    enc_path = Path(source["path"])
    if not os.path.lexists(enc_path):
        raise CheckpointError(
            f"{display(ckpt)}: its frozen encoder comes from {display(enc_path)}, which is missing; restore that file "
            "or train with the encoder embedded"
        )
    try:
        regular_file(enc_path, "file", error=CheckpointError)
    except CheckpointError as e:
        raise CheckpointError(f"{display(ckpt)}: its frozen encoder reference {e}") from None
    if file_sha256(enc_path) != source["sha256"]:
        raise CheckpointError(f"{display(ckpt)}: the referenced encoder file {display(enc_path)} changed (sha256 "
                              "mismatch)")
    try:
        sd = _published_layout(read(enc_path), follow_reference=False)
    except CheckpointError as e:  # the error names the checkpoint the user gave first, then the file it references
        raise CheckpointError(f"{display(ckpt)}: its frozen encoder {e}") from None
    return {k: v for k, v in sd.items() if k.startswith("pretrained.")}


def check_finite_weights(sd: dict, path: Path) -> None:
    """A CheckpointError naming the file and the first tensor when any weight is NaN or Inf: such a model only
    ever predicts NaN (a run that diverged, or a damaged file).

    One read of every tensor and no copies: the infinity norm of each (`torch._foreach_norm`, max |x|, which is
    NaN or Inf exactly when the tensor holds one) and a single check of those norms; only a file that fails is
    looked at tensor by tensor, to name and count what is wrong (issue 28: the per-tensor `isfinite` masks cost
    ~6 s of a load under load)."""
    import torch

    floats = {k: v for k, v in sd.items() if torch.is_tensor(v) and v.is_floating_point() and v.numel()}
    if not floats:
        return
    norms = torch._foreach_norm(list(floats.values()), float("inf"))
    if bool(torch.isfinite(torch.stack([n.float() for n in norms])).all()):
        return
    bad = [(k, int((~torch.isfinite(v)).sum())) for k, v in floats.items() if not bool(torch.isfinite(v).all())]
    if bad:
        total = sum(n for _, n in bad)
        raise CheckpointError(f"{display(path)}: {total} NaN/Inf weight values in {len(bad)} tensor(s), first "
                              f"{bad[0][0]} (a diverged run or a damaged file)")


def load_model(
    path: str | os.PathLike,
    encoder: str | None = None,
    metric: bool | None = None,
    expect: str = "any",
    dav2_max_depth: float | None = None,
) -> nn.Module:
    """Load any supported checkpoint (see `vda_lightning.checkpoints`) as a model in eval mode (float32, CPU).

    Video checkpoints give a `VideoDepthAnything`; Depth Anything V2 ones one whose fresh temporal modules make
    it equal the image model per frame. `encoder` (vits/vitb/vitl/vitt) is inferred from tensor shapes when None;
    `metric` from the file when None. `expect="video"` refuses image checkpoints, `expect="image"` returns the
    `DepthAnythingV2` image model (from either kind of file).

    A Depth Anything V2 *metric* file (sigmoid * max_depth output; max_depth from its published name, or
    `dav2_max_depth` for a renamed one) becomes a metric video model whose ReLU head is folded to match it
    (`models.depth_anything.sigmoid_head_to_relu`). The returned model's `kind_source` says where its
    relative/metric kind came from: "argument", "metadata", "name", or "none" (the file does not say; relative
    assumed — see `checkpoints.kind.resolve_kind`).
    """
    if expect not in ("any", "video", "image"):
        raise ValueError(f"expect must be 'any', 'video' or 'image', got {expect!r}")
    raw = read(path)
    sd = _published_layout(raw)
    check_finite_weights(sd, raw.path)
    image_file = is_image_state_dict(sd)
    hf = transformers_file(raw.path) if is_transformers_state_dict(raw.obj) else None  # its config.json
    hf_max = hf.max_depth if hf is not None and hf.metric else None
    sigmoid_max = (dav2_max_depth or dav2_metric_max_depth(raw.path) or hf_max) if image_file else None
    source = "argument" if metric is not None or (image_file and dav2_max_depth) else \
        "metadata" if hf is not None and hf.config is not None else kind_from_file(raw)[1]
    if sigmoid_max and metric is None:
        metric = True  # a DAv2 metric file makes a metric video model
    config = model_config(raw, sd, encoder or (hf.config.encoder if hf is not None and hf.config else None), metric)
    model = _build(raw, sd, config, image_file, expect, sigmoid_max)
    model.kind_source = source
    return model


def _build(raw: RawCheckpoint, sd: dict, config, image_file: bool, expect: str, sigmoid_max: float | None):
    if expect == "image":  # a DAv2 metric file keeps its sigmoid * max_depth head as the image model
        model = DepthAnythingV2(config, sigmoid_max) if image_file and sigmoid_max and config.metric else None
        return build_model(DepthAnythingV2, config, sd if image_file else video_to_image(sd), raw.path, model)
    if not image_file:
        return build_model(VideoDepthAnything, config, sd, raw.path)
    expected = expected_state(VideoDepthAnything, config)  # checked before anything is allocated
    if expect == "video":  # the report names the temporal modules the file lacks
        check_state_dict(expected, sd, raw.path, describe(VideoDepthAnything, config))
    check_state_dict(video_to_image(expected), sd, raw.path, describe(DepthAnythingV2, config))
    video = VideoDepthAnything(config)
    sd = dav2_to_video(sd, video.state_dict())
    if sigmoid_max and config.metric:
        sd = sigmoid_head_to_relu(sd, sigmoid_max)
    return build_model(VideoDepthAnything, config, sd, raw.path, video)


def load_image_model(path: str | os.PathLike, encoder: str | None = None) -> DepthAnythingV2:
    """A Depth Anything V2 image model (the teacher) from a DAv2 or VDA checkpoint."""
    return load_model(path, encoder=encoder, expect="image")  # type: ignore[return-value]
