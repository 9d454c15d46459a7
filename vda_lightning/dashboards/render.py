"""Dashboard pictures as pure functions of arrays: comparison panels, video frames, temporal profiles.

Predictions are relative disparity. To put prediction and ground truth on one colour scale, the prediction is
aligned to GT disparity with one least-squares scale and shift per *clip* (the evaluation protocol's fit), so
scale drift and flicker inside the clip stay visible. Colours: `vda_lightning.viz.colorize` (inferno, near =
bright), one range per clip from the GT disparity's 2nd/98th percentiles; invalid GT shows black.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from vda_lightning.evaluation.functional import MIN_DEPTH, fit_disparity_scale_shift
from vda_lightning.viz import colorize, temporal_profile

GAP = 2  # white pixels between panels
LABEL_HEIGHT = 14
ERROR_RANGE = (0.0, 0.5)  # AbsRel error map range: 0 (black) .. ≥ 50 % (bright)


def clip_disparities(pred: np.ndarray, gt_depth: np.ndarray | None, mask: np.ndarray | None):
    """(aligned pred disparity, GT disparity or None, vmin, vmax) for a (T, H, W) clip."""
    pred = np.asarray(pred, dtype=np.float64)
    if gt_depth is None:
        lo, hi = np.percentile(pred, [2, 98])
        return pred, None, float(lo), float(hi)
    gt_depth = np.asarray(gt_depth, dtype=np.float64)
    valid = gt_depth > MIN_DEPTH
    if mask is not None:
        valid &= np.asarray(mask, dtype=bool)
    if not valid.any():
        lo, hi = np.percentile(pred, [2, 98])
        return pred, None, float(lo), float(hi)
    scale, shift = fit_disparity_scale_shift(torch.from_numpy(pred), torch.from_numpy(gt_depth),
                                             torch.from_numpy(valid))
    aligned = np.maximum(float(scale) * np.maximum(pred, MIN_DEPTH) + float(shift), MIN_DEPTH)
    gt_disp = np.where(valid, 1.0 / np.where(valid, gt_depth, 1.0), np.nan)
    lo, hi = np.percentile(gt_disp[valid], [2, 98])
    return aligned, gt_disp, float(lo), float(hi if hi > lo else lo + 1e-6)


def relative_error(aligned_disp: np.ndarray, gt_disp: np.ndarray) -> np.ndarray:
    """Per-pixel depth AbsRel |d − g| / g written in disparities (d = 1/p, g = 1/q → |q/p − 1|); NaN where no GT."""
    return np.abs(gt_disp / aligned_disp - 1.0)


def to_uint8_rgb(frames: np.ndarray) -> np.ndarray:
    """(…, 3, H, W) or (…, H, W, 3) float in [0, 1] → (…, H, W, 3) uint8."""
    frames = np.asarray(frames)
    if frames.shape[-1] != 3 and frames.shape[-3] == 3:
        frames = np.moveaxis(frames, -3, -1)
    if frames.dtype == np.uint8:
        return frames
    return (np.clip(frames, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def fit_size(height: int, width: int, max_side: int, min_side: int = 0) -> tuple[int, int]:
    """Shrink so the longest side is ≤ max_side, or enlarge tiny clips by a whole factor to reach min_side."""
    longest = max(height, width)
    scale = min(1.0, max_side / longest)
    if longest < min_side:
        scale = float(min(-(-min_side // longest), max(1, max_side // longest)))
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize(image: np.ndarray, hw: tuple[int, int], nearest: bool = False) -> np.ndarray:
    if image.shape[:2] == tuple(hw):
        return image
    enlarge = hw[0] > image.shape[0]
    mode = cv2.INTER_NEAREST if nearest or enlarge else cv2.INTER_AREA  # enlarged pixels stay crisp blocks
    return cv2.resize(image, (hw[1], hw[0]), interpolation=mode)


def labelled(image: np.ndarray, text: str) -> np.ndarray:
    """A dark strip with `text` above the image, so a saved picture explains itself outside wandb."""
    strip = np.full((LABEL_HEIGHT, image.shape[1], 3), 32, np.uint8)
    cv2.putText(strip, text, (3, LABEL_HEIGHT - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (235, 235, 235), 1,
                cv2.LINE_AA)
    return np.concatenate([strip, image], axis=0)


def hstack(images: list[np.ndarray]) -> np.ndarray:
    """Left-to-right with white gaps; images must share their height."""
    height = images[0].shape[0]
    gap = np.full((height, GAP, 3), 255, np.uint8)
    parts = []
    for i, image in enumerate(images):
        parts += [gap, image] if i else [image]
    return np.concatenate(parts, axis=1)


def frame_panels(rgb: np.ndarray, aligned: np.ndarray, gt_disp: np.ndarray | None, vmin: float, vmax: float,
                 error: bool = True, cmap: str = "inferno") -> list[tuple[str, np.ndarray]]:
    """[(label, image)] for one frame: input | prediction | ground truth | AbsRel error."""
    panels = [("input", rgb), ("prediction (aligned)", colorize(aligned, vmin, vmax, cmap))]
    if gt_disp is not None:
        panels.append(("ground truth", colorize(gt_disp, vmin, vmax, cmap)))
        if error:
            panels.append(("AbsRel error 0-50%", colorize(relative_error(aligned, gt_disp), *ERROR_RANGE, "magma")))
    return panels


def comparison_image(rgb, aligned, gt_disp, vmin, vmax, error=True, cmap="inferno") -> np.ndarray:
    """One labelled row: input | colorized prediction | colorized GT (| error)."""
    return hstack([labelled(img, label) for label, img in frame_panels(rgb, aligned, gt_disp, vmin, vmax, error,
                                                                       cmap)])


def video_frames(rgb: np.ndarray, aligned: np.ndarray, gt_disp: np.ndarray | None, vmin: float, vmax: float,
                 cmap: str = "inferno") -> list[np.ndarray]:
    """Side-by-side input | prediction | GT for every frame (one colour range for the whole clip)."""
    out = []
    for t in range(len(rgb)):
        gt_t = None if gt_disp is None else gt_disp[t]
        out.append(hstack([img for _, img in frame_panels(rgb[t], aligned[t], gt_t, vmin, vmax, False, cmap)]))
    return out


def profile_image(rgb: np.ndarray, aligned: np.ndarray, gt_disp: np.ndarray | None, vmin: float, vmax: float,
                  column: int | None = None, min_width: int = 96, cmap: str = "inferno") -> np.ndarray:
    """Paper Fig. 9 style: the middle input frame with the sampled column marked, then that column's prediction
    (and GT) over time (x = frame, y = image row). Stable depth gives horizontal bands; flicker, vertical streaks."""
    t, h, w = aligned.shape
    column = w // 2 if column is None else column
    frame = rgb[t // 2].copy()
    frame[:, column] = (0, 255, 255)  # the sampled column, cyan
    repeat = max(1, -(-min_width // t))  # widen each frame's column so short clips stay readable
    widen = lambda p: np.repeat(p, repeat, axis=1)  # noqa: E731
    panels = [labelled(frame, f"input, column {column}"),
              labelled(widen(temporal_profile(aligned, column, vmin, vmax, cmap)), "prediction over time")]
    if gt_disp is not None:
        panels.append(labelled(widen(temporal_profile(gt_disp, column, vmin, vmax, cmap)), "GT over time"))
    return hstack(panels)


def clip_pictures(frames, pred, gt_depth=None, mask=None, max_side: int = 256, error: bool = True,
                  cmap: str = "inferno", min_side: int = 0) -> dict:
    """Everything the dashboard shows for one clip.

    frames: (T, 3, H, W) or (T, H, W, 3) in [0, 1] (or uint8); pred: (T, H, W) relative disparity;
    gt_depth, mask: (T, H, W) or None. Returns {"compare": image, "profile": image, "video": [frames],
    "abs_rel": clip AbsRel or None}, all uint8 RGB, at most `max_side` pixels per panel side (clips smaller
    than `min_side` are enlarged by a whole factor, nearest neighbour).
    """
    rgb = to_uint8_rgb(frames)
    pred = np.asarray(pred, dtype=np.float32)
    if rgb.shape[:3] != pred.shape:
        raise ValueError(f"frames {rgb.shape[:3]} and prediction {pred.shape} must share (T, H, W)")
    aligned, gt_disp, vmin, vmax = clip_disparities(pred, gt_depth, mask)
    # pixel-mean AbsRel of the aligned clip, for captions (the protocol's per-frame mean lives in evaluation/)
    abs_rel = None if gt_disp is None else float(np.nanmean(relative_error(aligned, gt_disp)))
    hw = fit_size(pred.shape[1], pred.shape[2], max_side, min_side)
    rgb = np.stack([resize(f, hw) for f in rgb])
    aligned = np.stack([resize(a.astype(np.float32), hw) for a in aligned])
    if gt_disp is not None:
        gt_disp = np.stack([resize(g.astype(np.float32), hw, nearest=True) for g in gt_disp])  # keep NaN holes
    middle = len(rgb) // 2
    gt_mid = None if gt_disp is None else gt_disp[middle]
    return {
        "compare": comparison_image(rgb[middle], aligned[middle], gt_mid, vmin, vmax, error, cmap),
        "profile": profile_image(rgb, aligned, gt_disp, vmin, vmax, cmap=cmap),
        "video": video_frames(rgb, aligned, gt_disp, vmin, vmax, cmap),
        "abs_rel": abs_rel,
    }
