"""Per-variant configuration of Video Depth Anything (the `model_configs` table of the published `run.py`), and the
configs of timm ViT backbones named by their timm name (`backbones.py`)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from . import backbones
from .input_contract import DEFAULT_CONTRACT, DEFAULT_INPUT_SIZE, InputContract, nearest_multiple


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model; stored in every checkpoint we write."""

    encoder: str
    embed_dim: int
    depth: int
    num_heads: int
    layer_idx: tuple[int, int, int, int]
    features: int
    out_channels: tuple[int, int, int, int]
    num_frames: int = 32
    metric: bool = False
    # Metric models trained for a canonical camera (training/metric.py) predict depth * canonical_focal / fx;
    # multiply by fx / canonical_focal for a camera of focal length fx (pixels). None: plain metric depth.
    canonical_focal: float | None = None
    # The ViT's patch (14 for DINOv2, 16 for DINOv3): the input contract's multiple and the head's output scale.
    patch_size: int = DEFAULT_CONTRACT.patch_size
    # A timm backbone (`encoder` a timm name): the timm version the config was made with (checkpoints record it).
    timm_version: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def input_contract(self) -> InputContract:
        """What the network expects as input (patch size, mean / std, the resize rule); the same for every DINOv2
        size (Depth Anything V2). A patch-16 backbone (DINOv3) takes multiples of 16 and a default input size of
        512 (the multiple of 16 nearest 518); timm's DINOv3 weights use the same ImageNet mean / std.
        `input_contract().to_dict()` is its JSON form."""
        if self.patch_size == DEFAULT_CONTRACT.patch_size:
            return DEFAULT_CONTRACT
        return InputContract(patch_size=self.patch_size,
                             input_size=nearest_multiple(DEFAULT_INPUT_SIZE, self.patch_size))

    @property
    def is_timm(self) -> bool:
        """Whether the encoder is a timm backbone named by its timm name (`models/timm_encoder.py`)."""
        return backbones.is_timm_name(self.encoder)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        d = dict(d)
        d["layer_idx"] = tuple(d["layer_idx"])
        d["out_channels"] = tuple(d["out_channels"])
        return cls(**d)


MODEL_CONFIGS: dict[str, ModelConfig] = {
    "vits": ModelConfig("vits", 384, 12, 6, (2, 5, 8, 11), 64, (48, 96, 192, 384)),
    "vitb": ModelConfig("vitb", 768, 12, 12, (2, 5, 8, 11), 128, (96, 192, 384, 768)),
    "vitl": ModelConfig("vitl", 1024, 24, 16, (4, 11, 17, 23), 256, (256, 512, 1024, 1024)),
    # Not published: a ViT-Ti/14-sized model for CPU tests and the quick start (same code paths, ~3.9M params).
    "vitt": ModelConfig("vitt", 192, 4, 3, (0, 1, 2, 3), 32, (32, 64, 96, 192)),
}


def canonical_depth_to_metres(depth, fx, canonical_focal: float | None):
    """Depth a canonical-camera model predicted (`ModelConfig.canonical_focal`) in metres for a camera of focal
    length `fx` (pixels of the frames the depth map has): depth * fx / canonical_focal. The one place this is
    written; training validation, `vda infer`, `vda eval` and `infer_video` all call it.

    `depth`: a numpy array or a torch tensor (..., H, W); `fx`: a number, or one per leading item of `depth`
    (per sample or per frame), as numbers, an array or a tensor. The factor is computed in float64 on the host and
    multiplied in `depth`'s dtype, so numpy and torch callers get the same numbers bit for bit.
    `canonical_focal` None: the depth is returned as it is (a plain metric or relative model)."""
    if canonical_focal is None:
        return depth
    if hasattr(depth, "detach"):  # a torch tensor (torch is imported only then: this module stays torch-free)
        import torch

        fx = torch.as_tensor(fx).detach().cpu().to(torch.float64)
        scale = (fx / canonical_focal).to(device=depth.device, dtype=depth.dtype)
    else:
        scale = np.asarray(np.asarray(fx, dtype=np.float64) / canonical_focal, dtype=depth.dtype)
    if getattr(scale, "ndim", 0):  # one factor per leading item: broadcast over the rest
        scale = scale.reshape(tuple(scale.shape) + (1,) * (depth.ndim - scale.ndim))
    return depth * scale


ENCODER_HELP = "vits, vitb, vitl (vitt: tests) or a timm DINOv2 / DINOv3 ViT name, e.g. vit_small_patch16_dinov3"
TIMM_OVERRIDES = ("embed_dim", "depth", "num_heads")  # timm keyword arguments a config may set (small test models)


def is_encoder_name(name) -> bool:
    """A registry size or a timm name of a supported family (`backbones.FAMILIES`)."""
    return name in MODEL_CONFIGS or backbones.is_timm_name(name)


def get_config(encoder: str, metric: bool = False, layer_idx=None, **timm_overrides) -> ModelConfig:
    """The config of a registry size (`vits`…) or of a timm backbone name (`backbones.py`: its architecture from
    timm, the published taps and head widths for published sizes, the rules otherwise). `layer_idx` overrides the
    four tapped blocks of a timm backbone; `timm_overrides` (embed_dim, depth, num_heads) build a smaller model of
    the same family (tests)."""
    if encoder in MODEL_CONFIGS and layer_idx is None and not timm_overrides:
        cfg = MODEL_CONFIGS[encoder]
        return ModelConfig(**{**cfg.to_dict(), "metric": bool(metric)})
    if not backbones.is_timm_name(encoder):
        raise ValueError(f"unknown encoder {encoder!r}; choose one of {sorted(MODEL_CONFIGS)} or a timm DINOv2 / "
                         "DINOv3 ViT name (vit_small_patch14_dinov2, vit_small_patch14_reg4_dinov2, "
                         "vit_small_patch16_dinov3, ...)")
    unknown = sorted(set(timm_overrides) - set(TIMM_OVERRIDES))
    if unknown:
        raise ValueError(f"encoder {encoder}: cannot override {unknown[0]!r} (only {', '.join(TIMM_OVERRIDES)})")
    arch = backbones.timm_architecture(encoder, **timm_overrides)
    taps, features, out_channels = backbones.head_for(arch["embed_dim"], arch["depth"])
    if layer_idx is not None:
        taps = check_taps(layer_idx, arch["depth"], encoder)
    return ModelConfig(encoder, arch["embed_dim"], arch["depth"], arch["num_heads"], tuple(taps), features,
                       tuple(out_channels), metric=bool(metric), patch_size=arch["patch_size"],
                       timm_version=backbones.timm_version())


def check_taps(layer_idx, depth: int, what: str = "encoder") -> tuple[int, int, int, int]:
    """Four block indices in [0, depth), in order (the DPT head reads them shallow to deep)."""
    taps = tuple(int(i) for i in layer_idx)
    if len(taps) != 4 or any(not 0 <= i < depth for i in taps) or list(taps) != sorted(taps):
        raise ValueError(f"{what}: layer_idx {list(layer_idx)} must be four block indices in 0..{depth - 1}, in "
                         "increasing order")
    return taps  # type: ignore[return-value]
