"""Make the sample dashboard pictures under docs/dashboards/ from a briefly trained quick-start model.

    python scripts/make_dashboard_samples.py [--out docs/dashboards] [--steps 120] [--work /tmp/vda_samples]

Runs `vda-fit --config conf/quickstart.yaml` (synthetic scenes, vitt, CPU) with wandb disabled and the
DepthPictures callback on, so the pictures are exactly those the dashboards log; then copies the last validation's
comparison and temporal-profile images and turns the side-by-side video into a GIF and a few-frame PNG strip.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml

from vda_lightning.dashboards.depth_pictures import write_png
from vda_lightning.dashboards.render import GAP
from vda_lightning.io import atomic_path

ROOT = Path(__file__).resolve().parents[1]


def train_with_pictures(work: Path, steps: int, resume: Path | None = None) -> Path:
    """Train the quick start for `steps` steps (or only re-render from `resume`, a checkpoint at that step);
    return the CSV logger's media folder."""
    override = {"trainer": {
        "logger": {"class_path": "vda_lightning.dashboards.vda_logger",
                   "init_args": {"project": "samples", "name": "quickstart", "save_dir": str(work)}},
        "callbacks": [{"class_path": "vda_lightning.dashboards.DepthPictures",
                       "init_args": {"num_clips": 2, "max_frames": 8, "max_side": 224, "min_side": 140,
                                     "every_n_validations": 100}}],
    }}
    work.mkdir(parents=True, exist_ok=True)
    (work / "override.yaml").write_text(yaml.safe_dump(override))
    cmd = [sys.executable, "-m", "vda_lightning.training.cli", "--config", str(ROOT / "conf/quickstart.yaml"),
           "--config", str(work / "override.yaml"), "--validate_before_fit=false",
           f"--trainer.default_root_dir={work}", f"--checkpoint.dirpath={work / 'checkpoints'}",
           f"--trainer.max_steps={steps}", f"--trainer.val_check_interval={steps}",
           f"--data.init_args.synthetic_dir={work / 'synthetic'}"]
    if resume:  # start from the trained weights, train 0 steps; the CLI's final validation renders the pictures
        cmd += [f"--model.init_checkpoint={resume}", "--trainer.max_steps=0"]
    subprocess.run(cmd, cwd=ROOT, env={**os.environ, "WANDB_MODE": "disabled"}, check=True)
    return work / "samples" / "quickstart" / "media"


def read_video(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def frame_strip(frames: list[np.ndarray], count: int = 4) -> np.ndarray:
    """`count` evenly spaced frames stacked top to bottom (a still stand-in for the video)."""
    picks = np.linspace(0, len(frames) - 1, count).round().astype(int)
    gap = np.full((GAP, frames[0].shape[1], 3), 255, np.uint8)
    rows = []
    for i, index in enumerate(picks):
        rows += [gap, frames[index]] if i else [frames[index]]
    return np.concatenate(rows, axis=0)


def write_gif(path: Path, frames: list[np.ndarray], fps: float) -> None:
    from PIL import Image

    images = [Image.fromarray(f) for f in frames]
    with atomic_path(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)


def collect(media: Path, out: Path) -> list[Path]:
    """Copy the last step's pictures of clip 0 into `out` under stable names."""
    import cv2

    out.mkdir(parents=True, exist_ok=True)
    last = lambda pattern: sorted(media.glob(pattern))[-1]  # noqa: E731 — step numbers are zero-padded
    written = []
    for kind in ("compare", "profile"):
        image = cv2.imread(str(last(f"pictures_*_0_{kind}_step*.png")))[..., ::-1]
        written.append(out / f"{kind}.png")
        write_png(written[-1], image)
    frames = read_video(last("pictures_*_0_video_step*.mp4"))
    written.append(out / "video_strip.png")
    write_png(written[-1], frame_strip(frames))
    written.append(out / "video.gif")
    write_gif(written[-1], frames, fps=4)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "dashboards")
    parser.add_argument("--steps", type=int, default=120, help="training steps (the quick start's 120)")
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temporary one)")
    parser.add_argument("--resume", type=Path, help="re-render from this checkpoint of an earlier run (same --work)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="vda_samples_") as tmp:
        media = train_with_pictures(args.work or Path(tmp), args.steps, args.resume)
        for path in collect(media, args.out):
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
