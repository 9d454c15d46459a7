"""The training augmentation on the accelerator (`augment_on: device`): kornia's `VideoSequential` applies the
random resized crop, the flip and the colour jitter to a whole batch of clips after the copy to the device.

The data workers then only decode: each sample leaves the worker as stored (uint8 frames, targets at the stored
size; a batch of differing stored sizes is zero-padded to its largest, see `collate`), with the parameters its
clip was given (`augment_params`, drawn by `transforms.draw_augmentation` from the worker's generator exactly as
the CPU path draws them). kornia applies those parameters instead of drawing its own, so:
- both paths have the same distributions (one sampler) and the same sample stream for a seed;
- the exact resume of the training stream (the workers' generator states) holds for either path;
- a crop never reaches into a batch's padding (boxes are drawn inside each sample's stored size).

`VideoSequential(same_on_frame=True)` repeats each clip's parameters over its frames. Frames are resized as the
CPU path resizes them (bilinear, antialiased, half-pixel centres); targets and masks go through kornia's mask
path (nearest-exact: no mixing across depth edges). K and poses follow the geometry in float64
(`transforms.crop_resize_K`, `transforms.flip_K_poses`).
"""
from __future__ import annotations

import kornia.augmentation as KA
import torch
import torch.nn.functional as F
from kornia.constants import Resample

from .transforms import PARAM_FIELDS, color_matrix, crop_resize_K, flip_K_poses

TARGETS = ("disparity", "depth", "mask")


class _WorkerDrawn:
    """A kornia augmentation that draws nothing: `forward_parameters` hands out `self.preset`, one row per clip
    (set by `DeviceAugmentation` from the batch's `augment_params` just before the call)."""

    preset: dict[str, torch.Tensor] | None = None

    def forward_parameters(self, batch_shape: torch.Size) -> dict[str, torch.Tensor]:
        if self.preset is None:
            raise RuntimeError(f"{type(self).__name__} applies the data workers' parameters: none were set")
        params = dict(self.preset)
        params.setdefault("batch_prob", torch.ones(batch_shape[0], dtype=torch.bool))
        params["forward_input_shape"] = torch.tensor(batch_shape, dtype=torch.long)
        return params


class ClipResizedCrop(_WorkerDrawn, KA.RandomResizedCrop):
    """kornia's random resized crop (slice mode) with the CPU path's resampling: frames bilinear with torch's
    antialias on the half-pixel grid (kornia's slice mode has no antialias), masks nearest-exact."""

    def __init__(self, size: tuple[int, int]):
        super().__init__(size, resample="bilinear", align_corners=False, cropping_mode="slice")

    def apply_transform(self, input, params, flags, transform=None):
        nearest = flags["resample"] == Resample.NEAREST
        corners = params["src"].round().long().tolist()  # (N, 4, 2) inclusive pixel corners
        out, start = [], 0
        for i in range(1, len(corners) + 1):  # rows of one clip share a box: crop + resize them together
            if i < len(corners) and corners[i] == corners[start]:
                continue
            (x0, y0), _, (x1, y1), _ = corners[start]
            crop = input[start:i, :, y0:y1 + 1, x0:x1 + 1]
            if nearest:
                out.append(F.interpolate(crop, size=flags["size"], mode="nearest-exact"))
            else:
                out.append(F.interpolate(crop, size=flags["size"], mode="bilinear", antialias=True,
                                         align_corners=False))
            start = i
        return torch.cat(out) if out else input.new_zeros(0, input.shape[1], *flags["size"])


class ClipHorizontalFlip(_WorkerDrawn, KA.RandomHorizontalFlip):
    """kornia's horizontal flip, applied to the clips whose drawn flip is set (`batch_prob`)."""


class ClipColorJitter(_WorkerDrawn, KA.IntensityAugmentationBase2D):
    """The CPU path's colour jitter as one affine colour map x -> A x + t per clip (`transforms.color_matrix`:
    hue rotation, saturation, contrast around 0.5, brightness), clamped to [0, 1]. Masks pass unchanged."""

    def __init__(self):
        super().__init__(p=1.0)

    def apply_transform(self, input, params, flags, transform=None):
        A, t = params["A"].to(input), params["t"].to(input)
        return (torch.einsum("nij,njhw->nihw", A, input) + t[:, :, None, None]).clamp_(0, 1)


def crop_corners(box: torch.Tensor) -> torch.Tensor:
    """(N, 4) float (x0, y0, w, h) -> (N, 4, 2) kornia corners (top-left, top-right, bottom-right, bottom-left)."""
    x0, y0, w, h = box.unbind(-1)
    x1, y1 = x0 + w - 1, y0 + h - 1
    return torch.stack([torch.stack(c, -1) for c in ((x0, y0), (x1, y0), (x1, y1), (x0, y1))], -2)


class DeviceAugmentation(torch.nn.Module):
    """Augments a batch of clips on its device with the parameters the workers drew (module docstring)."""

    def __init__(self, out_hw: tuple[int, int]):
        super().__init__()
        self.out_hw = tuple(int(v) for v in out_hw)
        self.crop, self.flip, self.colour = ClipResizedCrop(self.out_hw), ClipHorizontalFlip(), ClipColorJitter()
        self.video = KA.VideoSequential(self.crop, self.flip, self.colour, data_format="BTCHW", same_on_frame=True)

    def _preset(self, params: torch.Tensor, stored_hw: tuple[int, int]) -> None:
        p = {name: params[:, i] for i, name in enumerate(PARAM_FIELDS)}
        oh, ow = self.out_hw
        n = params.shape[0]
        dst = crop_corners(torch.tensor([[0.0, 0.0, ow, oh]]).expand(n, 4))
        box = torch.stack([p["x0"], p["y0"], p["w"], p["h"]], -1).float()
        self.crop.preset = {"src": crop_corners(box), "dst": dst, "input_size": torch.tensor([stored_hw]).expand(n, 2),
                            "output_size": torch.tensor([[oh, ow]]).expand(n, 2)}
        self.flip.preset = {"batch_prob": p["flip"] > 0.5}
        maps = [color_matrix(*row) for row in params[:, 5:9].tolist()]  # brightness, contrast, saturation, hue
        self.colour.preset = {"A": torch.stack([A for A, _ in maps]).float(),
                              "t": torch.stack([t for _, t in maps]).float()}

    @torch.no_grad()
    def forward(self, batch: dict) -> dict:
        """A stored batch (uint8 frames (B, T, 3, H, W), targets, K, poses, `augment_params`) -> the batch the
        CPU path would have made: float32 frames in [0, 1] at out_hw, targets, K and poses to match."""
        params = batch["augment_params"].detach().cpu().double()
        H, W = batch["frames"].shape[-2:]
        self._preset(params, (H, W))
        out = dict(batch)
        frames = batch["frames"]
        out["frames"] = self.video(frames.float().div_(255) if frames.dtype == torch.uint8 else frames.float())
        present = [k for k in TARGETS if k in batch]
        if present:
            targets = torch.stack([batch[k].float() for k in present], 2)  # (B, T, n, H, W) as one "mask"
            targets = self.video.transform_masks(targets, self.video._params, extra_args={})
            for i, k in enumerate(present):
                out[k] = targets[:, :, i] > 0.5 if k == "mask" else targets[:, :, i].contiguous()
        out.update(self._geometry(batch, params))
        return out

    def _geometry(self, batch: dict, params: torch.Tensor) -> dict:
        """K through the crop + resize and the flip (only where K is known: zeros stay zeros), poses mirrored."""
        if "K" not in batch:
            return {}
        dev = batch["K"].device
        K, poses = batch["K"].double(), batch["poses"].double()
        p = params.to(dev)
        box = (p[:, 0], p[:, 1], p[:, 2], p[:, 3])
        known = K.abs().flatten(1).sum(1) > 0
        K_crop = crop_resize_K(K, box, self.out_hw)
        K_flip, poses_flip = flip_K_poses(K_crop, poses, self.out_hw[1])
        flip = p[:, 4] > 0.5
        K_new = torch.where(flip[:, None, None], K_flip, K_crop)
        return {"K": torch.where(known[:, None, None], K_new, K).to(batch["K"].dtype),
                "poses": torch.where(flip[:, None, None, None], poses_flip, poses).to(batch["poses"].dtype)}
