"""Per-sample tensor transforms: depth kind -> training target, clip-consistent augmentation, collation.

Everything random is drawn ONCE per clip from a numpy Generator and applied identically to every frame, so a
clip stays a consistent video. Speed matters here (32 frames of 518x518 per sample, one core per worker): frames
stay uint8 through crop + resize (torch's uint8 antialiased bilinear path, ~7x faster than float), and the whole
colour jitter is ONE affine colour map (brightness, contrast, saturation as a grey blend, hue as a YIQ rotation)
applied in a single pass (kornia's HSV-based hue/saturation took ~8 s per such clip).
Geometry keeps K and poses exact: pixel centres sit at integer coordinates, so a crop at x0 followed by a resize
by s maps u -> (u - x0 + 0.5)s - 0.5; a horizontal flip maps u -> W - 1 - u and mirrors the world
(c2w -> F c2w F, F = diag(-1, 1, 1, 1)).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .format import ClipRecord

MIRROR_X = torch.diag(torch.tensor([-1.0, 1.0, 1.0, 1.0], dtype=torch.float64))


def depth_to_target(depth: torch.Tensor, mask: torch.Tensor | None, kind: str, min_depth: float = 1e-3,
                    max_depth: float = 0.0):
    """(disparity, metric depth or zeros, valid) from a stored depth of `kind`; invalid pixels are 0 in both.

    metric_depth: valid where min_depth <= depth (<= max_depth when max_depth > 0), target 1/depth.
    relative_disparity / pseudo_label: valid where the value is > 0, the target is the value, metric depth unknown.
    NaN fails every comparison below, so it is never valid.
    """
    zeros = torch.zeros_like(depth)
    if kind == "metric_depth":
        valid = depth >= max(min_depth, 1e-12)
        valid &= (depth <= max_depth) if max_depth > 0 else torch.isfinite(depth)
    elif kind in ("relative_disparity", "pseudo_label"):
        valid = (depth > 0) & torch.isfinite(depth)
    else:
        raise ValueError(f"depth kind {kind!r} has no training target")
    if mask is not None:
        valid &= mask
    if kind == "metric_depth":
        return torch.where(valid, depth.reciprocal(), zeros), torch.where(valid, depth, zeros), valid
    return torch.where(valid, depth, zeros), zeros, valid


def random_crop_box(rng: np.random.Generator, height: int, width: int, out_hw: tuple[int, int],
                    scale: tuple[float, float], ratio: tuple[float, float]) -> tuple[int, int, int, int]:
    """(x0, y0, w, h) of a random crop covering `scale` of the largest box with the output's aspect ratio,
    its aspect ratio jittered by a factor in `ratio` (log-uniform). Always inside the image."""
    oh, ow = out_hw
    full = min(width / ow, height / oh)       # the largest output-shaped box: (full*ow) x (full*oh)
    area = rng.uniform(*scale)
    r = float(np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1]))))
    w = min(width, max(1, int(round(full * ow * np.sqrt(area * r)))))
    h = min(height, max(1, int(round(full * oh * np.sqrt(area / r)))))
    return int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1)), w, h


def center_crop_box(height: int, width: int, out_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """The largest centred box with the output's aspect ratio (short side resize + centre crop)."""
    oh, ow = out_hw
    full = min(width / ow, height / oh)
    w, h = min(width, int(round(full * ow))), min(height, int(round(full * oh)))
    return (width - w) // 2, (height - h) // 2, w, h


def crop_resize_K(K: torch.Tensor, box, out_hw: tuple[int, int]) -> torch.Tensor:
    """K (..., 3, 3) after cropping box (x0, y0, w, h) and resizing to out_hw; the box's entries may be numbers or
    tensors of K's batch shape (one box per K)."""
    x0, y0, w, h = box
    sx, sy = out_hw[1] / w, out_hw[0] / h
    K = K.clone()
    K[..., 0, 0], K[..., 0, 1], K[..., 1, 1] = K[..., 0, 0] * sx, K[..., 0, 1] * sx, K[..., 1, 1] * sy
    K[..., 0, 2] = (K[..., 0, 2] - x0 + 0.5) * sx - 0.5
    K[..., 1, 2] = (K[..., 1, 2] - y0 + 0.5) * sy - 0.5
    return K


def flip_K_poses(K: torch.Tensor, poses: torch.Tensor, width: int):
    """K (..., 3, 3) and camera-to-world poses (..., 4, 4) of a horizontally flipped image `width` wide."""
    K = K.clone()
    K[..., 0, 2] = width - 1 - K[..., 0, 2]
    K[..., 0, 1] = -K[..., 0, 1]
    m = MIRROR_X.to(poses.dtype).to(poses.device)
    return K, m @ poses @ m


@dataclass
class AugmentConfig:
    """Training augmentation, drawn once per clip: the `augment:` section of `VideoDepthDataModule`.

    A new knob is one field here plus its use in `augment` below; the output size is the DataModule's `crop_size`.
    """

    scale: tuple[float, float] = (0.5, 1.0)   # fraction of the largest output-shaped box
    ratio: tuple[float, float] = (0.8, 1.25)  # aspect-ratio jitter factor (log-uniform)
    hflip: float = 0.5                        # probability of a horizontal flip
    brightness: float = 0.1                   # additive, uniform in +-brightness
    contrast: float = 0.2                     # factor in 1 +- contrast
    saturation: float = 0.2                   # factor in 1 +- saturation
    hue: float = 0.02                         # fraction of a full turn

    def __post_init__(self):
        self.scale, self.ratio = tuple(float(v) for v in self.scale), tuple(float(v) for v in self.ratio)
        if len(self.scale) != 2 or not 0 < self.scale[0] <= self.scale[1] <= 1:
            raise ValueError(f"augment.scale must be [min, max] with 0 < min <= max <= 1, got {list(self.scale)}")
        if len(self.ratio) != 2 or not 0 < self.ratio[0] <= self.ratio[1]:
            raise ValueError(f"augment.ratio must be [min, max] with 0 < min <= max, got {list(self.ratio)}")
        if not 0 <= self.hflip <= 1:
            raise ValueError(f"augment.hflip is a probability, got {self.hflip}")


def to_tensors(rec: ClipRecord, min_depth: float, max_depth: float) -> dict:
    """Frames uint8 (T,3,H,W) (a channels-last view; `finish` makes them float), target disparity/depth/mask,
    K (zeros if unknown), poses (identity if unknown)."""
    T = rec.frames.shape[0]
    if rec.jpeg is not None:  # left for the device to decode (data/device_decode.py): bytes, and the stored size
        out = {"jpeg": rec.jpeg, "stored_hw": torch.tensor(rec.jpeg_hw, dtype=torch.int64)}
    else:
        out = {"frames": torch.from_numpy(rec.frames).permute(0, 3, 1, 2)}
    if rec.depth is not None and rec.depth_kind != "none":
        mask = None if rec.mask is None else torch.from_numpy(rec.mask)
        disp, depth, valid = depth_to_target(torch.from_numpy(rec.depth), mask, rec.depth_kind, min_depth,
                                             max_depth)
        out.update(disparity=disp, depth=depth, mask=valid)
    out["K"] = torch.zeros(3, 3, dtype=torch.float64) if rec.K is None else torch.from_numpy(rec.K).double()
    out["poses"] = (torch.eye(4, dtype=torch.float64).repeat(T, 1, 1) if rec.poses is None
                    else torch.from_numpy(rec.poses).double())
    out["has_pose"] = rec.poses is not None
    out["has_K"] = rec.K is not None
    return out


def apply_geometry(s: dict, box: tuple[int, int, int, int], out_hw: tuple[int, int], flip: bool) -> dict:
    """Crop `box`, resize to out_hw (frames bilinear+antialias, targets nearest: no mixing across edges),
    optional flip; K and poses follow."""
    x0, y0, w, h = box
    H, W = s["frames"].shape[-2:]
    if (x0, y0, w, h) != (0, 0, W, H) or (h, w) != tuple(out_hw):
        sl = (..., slice(y0, y0 + h), slice(x0, x0 + w))
        frames = s["frames"][sl]
        if frames.dtype == torch.uint8:  # the fast path wants channels-last uint8
            frames = frames.contiguous(memory_format=torch.channels_last)
        s["frames"] = F.interpolate(frames, size=out_hw, mode="bilinear", antialias=True, align_corners=False)
        for k in ("disparity", "depth", "mask"):
            if k in s:
                v = s[k][sl].unsqueeze(1)
                v = F.interpolate(v.to(torch.uint8) if k == "mask" else v, size=out_hw, mode="nearest-exact")
                s[k] = v.squeeze(1).bool() if k == "mask" else v.squeeze(1)
        if s["has_K"]:
            s["K"] = crop_resize_K(s["K"], box, out_hw)
    if flip:
        for k in ("frames", "disparity", "depth", "mask"):
            if k in s:
                s[k] = s[k].flip(-1)
        K, s["poses"] = flip_K_poses(s["K"], s["poses"], out_hw[1])
        if s["has_K"]:
            s["K"] = K
    return s


_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]],
                           dtype=torch.float64)
_GREY = _RGB_TO_YIQ[0]


def color_matrix(brightness: float, contrast: float, saturation: float, hue_turns: float):
    """(A, t) of x -> A x + t on RGB in [0, 1]: hue rotation, then saturation, contrast around 0.5, brightness."""
    c, s = np.cos(2 * np.pi * hue_turns), np.sin(2 * np.pi * hue_turns)
    rot = torch.tensor([[1, 0, 0], [0, c, -s], [0, s, c]], dtype=torch.float64)
    A = torch.linalg.inv(_RGB_TO_YIQ) @ rot @ _RGB_TO_YIQ
    A = (saturation * torch.eye(3, dtype=torch.float64) + (1 - saturation) * torch.ones(3, 1) * _GREY) @ A
    A = contrast * A
    t = torch.full((3,), 0.5 * (1 - contrast) + brightness, dtype=torch.float64)
    return A, t


def finish_frames(frames: torch.Tensor, A: torch.Tensor | None = None, t: torch.Tensor | None = None):
    """uint8 or float (T,3,H,W) -> contiguous float32 in [0, 1], through the affine colour map if given."""
    scale = 1 / 255 if frames.dtype == torch.uint8 else 1.0
    if A is None:
        return frames.float().mul_(scale).contiguous()
    x = frames.permute(0, 2, 3, 1).float()  # (T,H,W,3): one small matmul per pixel
    x = torch.addmm(t.float(), x.reshape(-1, 3), (A.T * scale).float()).reshape(x.shape)
    return x.clamp_(0, 1).permute(0, 3, 1, 2).contiguous()


# One clip's augmentation parameters, in the order of `augment_params` (float64): crop box, flip, colour.
PARAM_FIELDS = ("x0", "y0", "w", "h", "flip", "brightness", "contrast", "saturation", "hue")


def draw_augmentation(rng: np.random.Generator, cfg: AugmentConfig, height: int, width: int,
                      out_hw: tuple[int, int]) -> torch.Tensor:
    """One draw per clip, the same for every frame: `PARAM_FIELDS` as a float64 tensor. Both the CPU path
    (`augment`) and the device path (`device_augment`) apply exactly these."""
    box = random_crop_box(rng, height, width, out_hw, cfg.scale, cfg.ratio)
    flip = float(rng.random() < cfg.hflip)
    colour = (rng.uniform(-cfg.brightness, cfg.brightness), rng.uniform(1 - cfg.contrast, 1 + cfg.contrast),
              rng.uniform(1 - cfg.saturation, 1 + cfg.saturation), rng.uniform(-cfg.hue, cfg.hue))
    return torch.tensor([*box, flip, *colour], dtype=torch.float64)


def apply_augmentation(s: dict, params: torch.Tensor, out_hw: tuple[int, int]) -> dict:
    """Random resized crop to `out_hw`, flip and colour jitter with the drawn `params`, in the worker."""
    x0, y0, w, h, flip, *colour = params.tolist()
    s = apply_geometry(s, (int(x0), int(y0), int(w), int(h)), out_hw, flip=flip > 0.5)
    s["frames"] = finish_frames(s["frames"], *color_matrix(*colour))
    s["augment_params"] = params
    return s


def augment(s: dict, rng: np.random.Generator, cfg: AugmentConfig, out_hw: tuple[int, int],
            on_device: bool = False) -> dict:
    """Draw one clip's parameters; apply them here (the CPU path) or only attach them (`on_device`: uint8 frames
    and targets stay as stored, `DeviceAugmentation` applies them after the copy to the accelerator)."""
    H, W = s["frames"].shape[-2:] if "frames" in s else s["stored_hw"].tolist()
    params = draw_augmentation(rng, cfg, H, W, out_hw)
    if on_device:
        s["augment_params"] = params
        return s
    return apply_augmentation(s, params, out_hw)


BATCH_TENSORS = ("frames", "rgb", "disparity", "depth", "mask", "K", "poses", "has_pose", "frame_indices",
                 "augment_params", "stored_hw")
PADDED = ("frames", "disparity", "depth", "mask")  # (..., H, W): zero-padded where stored sizes differ


def _pad_to(v: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    return F.pad(v, (0, hw[1] - v.shape[-1], 0, hw[0] - v.shape[-2])) if tuple(v.shape[-2:]) != hw else v
BATCH_STRINGS = ("dataset", "sequence", "depth_kind", "key", "shard", "benchmark",
                 "jpeg")  # jpeg: each clip's list of JPEG bytes (bytes stay on the host through the transfer)


def collate(samples: list[dict], keep_dtypes: bool = False) -> dict:
    """Stack samples into the batch dict of docs/architecture.md (float32 tensors; strings as lists).

    Targets are kept only if every sample has one (an unlabelled image batch is labelled online by the teacher).
    keep_dtypes: leave float64 as float64 (benchmark ground truth is scored in float64, as published).
    Samples of different stored sizes (only the device-augmentation path batches them uncropped) are zero-padded
    at the bottom and right to the largest: their drawn crop boxes lie inside their own stored size.
    """
    out = {}
    sizes = {tuple(s["frames"].shape[-2:]) if "frames" in s else tuple(s["stored_hw"].tolist())
             for s in samples if "frames" in s or "stored_hw" in s}
    hw = (max(h for h, _ in sizes), max(w for _, w in sizes)) if len(sizes) > 1 else None
    for k in BATCH_TENSORS:
        if all(k in s for s in samples):
            vs = [torch.as_tensor(s[k]) for s in samples]
            v = torch.stack([_pad_to(x, hw) for x in vs] if hw and k in PADDED else vs)
            out[k] = v.float() if v.is_floating_point() and not keep_dtypes and k != "augment_params" else v
    for k in BATCH_STRINGS:
        if all(k in s for s in samples):
            out[k] = [s[k] for s in samples]
    return out
