"""The model's input contract: what a frame must become before the network sees it (timm's `data_config`).

This module is the one place that defines the patch size, the ImageNet mean / std and the multiple-of-14 size
rule; everything that feeds a model reads them from here (usually through `ModelConfig.input_contract()`):
inference preprocessing, the training normalisation, the teacher and pseudo-labeller, the DataModule's crop check,
the baseline loop and the ONNX sidecar (`InputContract.to_dict()`).

Published behaviour reproduced:
* Depth Anything V2 `depth_anything_v2/util/transform.py`: `Resize(width=height=input_size, keep_aspect_ratio=True,
  ensure_multiple_of=14, resize_method='lower_bound', cv2.INTER_CUBIC)` — both sides scaled by the larger of
  input_size / H and input_size / W, each rounded to the nearest multiple of 14 (half to even) or, if that falls
  below input_size, rounded up; `NormalizeImage` with the ImageNet mean / std (numpy float64 arithmetic), then
  float32 (`PrepareForNet`).
* Depth Anything V2 `depth_anything_v2/dpt.py::infer_image`: input_size 518 on the RGB image / 255 (float64), the
  prediction resized back to the image size with bilinear, align_corners=True.
* Video Depth Anything `video_depth_anything/video_depth.py::infer_video_depth`: first the aspect rule (frames
  wider than 1.78:1 get input_size · 1.777 / ratio, rounded to a multiple of 14), then the same transform on the
  float32 frame / 255.

Two statements of the same transform live here: `prepare_image` on the host with OpenCV, exactly as published
(the published-loop baseline and the pseudo-labeller, whose labels must be the teacher's published output), and
`resize` + `normalize` on torch tensors, batched on the device (video inference). torch's bicubic (a = −0.75,
align_corners=False, no antialias) is the exact cubic; OpenCV's INTER_CUBIC is within ~2e-7 of it on float32
images but ~4e-6 on float64 ones (its interpolation weights are quantised), which is why the float64 image path
of the published DAv2 inference is reproduced with OpenCV itself. torch, OpenCV and numpy are imported on use.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

PATCH_SIZE = 14                                 # the DINOv2 ViT's patch: every network side is a multiple of it
IMAGENET_MEAN = (0.485, 0.456, 0.406)           # RGB in [0, 1], normalised with ImageNet statistics
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_INPUT_SIZE = 518                        # published default of run.py and infer_image (37 patches)
MAX_ASPECT, ASPECT_SCALE = 1.78, 1.777          # video_depth.py's aspect rule


def nearest_multiple(x: float, multiple: int = PATCH_SIZE) -> int:
    """x rounded to the nearest multiple (ties to even, like numpy / Python round)."""
    return int(round(x / multiple)) * multiple


def aspect_input_size(height: int, width: int, input_size: int = DEFAULT_INPUT_SIZE,
                      multiple: int = PATCH_SIZE) -> int:
    """The video aspect rule: frames wider (or taller) than 1.78:1 get a smaller input size."""
    ratio = max(height, width) / min(height, width)
    if ratio > MAX_ASPECT:
        input_size = nearest_multiple(int(input_size * ASPECT_SCALE / ratio), multiple)
    return input_size


def lower_bound_size(height: int, width: int, input_size: int = DEFAULT_INPUT_SIZE,
                     multiple: int = PATCH_SIZE) -> tuple[int, int]:
    """(H, W) of the published lower-bound resize: aspect kept, both sides >= input_size, multiples of 14."""
    scale = max(input_size / height, input_size / width)  # the larger scale: the short side reaches input_size

    def side(x: float) -> int:
        y = nearest_multiple(x, multiple)
        return y if y >= input_size else math.ceil(x / multiple) * multiple

    return side(scale * height), side(scale * width)


def multiples_around(x: int, multiple: int = PATCH_SIZE) -> tuple[int, int]:
    """The multiples just below and just above x (both x when it is one); for messages that suggest a size."""
    return x // multiple * multiple, -(-x // multiple) * multiple


class FrameShapeError(ValueError):
    """A frame the network cannot take (a side would shrink below one patch); the message is one line."""


def is_multiple_size(hw, multiple: int = PATCH_SIZE) -> bool:
    """Whether (H, W) can enter the network as it is: positive multiples of the patch size."""
    return all(int(v) > 0 and int(v) % multiple == 0 for v in hw)


@dataclass(frozen=True)
class InputContract:
    """The network input: RGB in [0, 1], resized (lower bound, bicubic) to multiples of `patch_size`, normalised.

    `network_size(H, W, input_size, video=True)` adds the video aspect rule; `resize` / `normalize` act on torch
    tensors (N, 3, H, W); `to_dict()` is the JSON form (export sidecars).
    """

    patch_size: int = PATCH_SIZE
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    input_size: int = DEFAULT_INPUT_SIZE
    resize_method: str = "lower_bound"          # keep aspect; both sides >= input_size
    interpolation: str = "bicubic"              # = cv2.INTER_CUBIC; no antialias
    max_aspect: float = MAX_ASPECT              # video inference only
    aspect_scale: float = ASPECT_SCALE
    value_range: tuple[float, float] = (0.0, 1.0)
    channel_order: str = "RGB"
    output_resize: str = "bilinear, align_corners=True"  # prediction back to the frame size (runtime.to_frame_size)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def network_size(self, height: int, width: int, input_size: int | None = None,
                     video: bool = False) -> tuple[int, int]:
        """(H, W) the network sees for a (height, width) frame: the lower-bound rule, after the aspect rule
        when `video` (published video_depth.py; image inference, dpt.py, has none)."""
        size = self.input_size if input_size is None else input_size
        if video:
            size = aspect_input_size(height, width, size, self.patch_size)
        return lower_bound_size(height, width, size, self.patch_size)

    def max_video_aspect(self, input_size: int | None = None) -> float:
        """The widest (or tallest) aspect ratio video inference takes at `input_size`: beyond it the aspect rule
        leaves less than half a patch, which rounds to a zero side (518: about 115:1)."""
        size = self.input_size if input_size is None else input_size
        return size * self.aspect_scale / (self.patch_size / 2 + 1)

    def checked_network_size(self, height: int, width: int, input_size: int | None = None, video: bool = False,
                             what: str = "frame") -> tuple[int, int]:
        """`network_size`, computed before any work, or `FrameShapeError` naming `what` and its size when a side
        would come out under one patch (the published code fails deep inside the model on such frames)."""
        size = self.input_size if input_size is None else input_size
        if height < 1 or width < 1:
            raise FrameShapeError(f"{what}: frame size {height}x{width} is empty")
        shape = self.network_size(height, width, size, video)
        if min(shape) < self.patch_size:
            ratio = max(height, width) / min(height, width)
            raise FrameShapeError(
                f"{what}: a {height}x{width} frame (aspect {ratio:.0f}:1) would enter the network at "
                f"{shape[0]}x{shape[1]}, a side under one {self.patch_size}-pixel patch; video inference takes "
                f"aspect ratios up to {self.max_video_aspect(size):.0f}:1 at input size {size} (crop or pad the "
                "frames, or raise --input-size)")
        return shape

    def check_size(self, hw, what: str = "size") -> tuple[int, int]:
        """(H, W) as ints, or a ValueError when they are not positive multiples of the patch size."""
        h, w = (int(v) for v in hw)
        if not is_multiple_size((h, w), self.patch_size):
            raise ValueError(f"{what} {list(hw)} must be positive multiples of {self.patch_size} "
                             "(the ViT patch size)")
        return h, w

    def prepare_image(self, image, size: tuple[int, int]):
        """One (H, W, 3) RGB image in [0, 1] (float32 as in video_depth.py, float64 as in dpt.py) → the network
        input (3, *size) float32, with OpenCV as published: cv2.resize INTER_CUBIC, (image − mean) / std in
        float64 (the published list constants promote), HWC → CHW, float32 (`PrepareForNet`)."""
        import cv2
        import numpy as np

        if tuple(image.shape[:2]) != tuple(size):
            image = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)
        image = (image - list(self.mean)) / list(self.std)
        return np.ascontiguousarray(image.transpose(2, 0, 1)).astype(np.float32)

    def resize(self, images, size: tuple[int, int]):
        """(N, 3, h, w) float → (N, 3, H, W) by bicubic (OpenCV's INTER_CUBIC; overshoot kept, no clipping)."""
        import torch.nn.functional as F

        if tuple(images.shape[-2:]) == tuple(size):
            return images
        return F.interpolate(images, size=tuple(size), mode="bicubic", align_corners=False)

    def normalize(self, images, compute_dtype=None):
        """(image − mean) / std over the channel axis (..., 3, H, W), in `compute_dtype` (e.g. float64, as the
        published numpy code computes) and returned in the input's dtype; None computes in the input's dtype."""
        dtype = images.dtype
        x = images if compute_dtype is None else images.to(compute_dtype)
        mean = x.new_tensor(self.mean).view(3, 1, 1)
        std = x.new_tensor(self.std).view(3, 1, 1)
        return ((x - mean) / std).to(dtype)


DEFAULT_CONTRACT = InputContract()
