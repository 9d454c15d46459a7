"""Where `vda infer` puts each output: our default layout and the published `run.py` one, side by side.

Plain Python (no numpy, torch or OpenCV), so that `vda infer --help` can list the formats.

| `--save`    | `--layout default`                      | `--layout published` (as `run.py` names it)        |
|-------------|-----------------------------------------|----------------------------------------------------|
| `npz`       | `<name>_depths.npz`, key `depths`       | `<name>_depths.npz`, key `depths`                  |
| `src`       | `<name>_src.mp4` (the frames processed) | `<name>_src.mp4`                                   |
| `vis`       | `<name>_vis.mp4`: frames ∣ depth        | `<name>_vis.mp4`: depth only                       |
| `vis-depth` | `<name>_vis_depth.mp4`: depth only      | `<name>_vis.mp4` (the same file as `vis`)          |
| `exr`       | `<name>_exr/000000.exr`                 | `<name>_depths_exr/frame_00000.exr`                |
| `png16`     | `<name>_png16/000000.png` + scale JSON  | (not a published output) as in the default layout  |
| `ply`       | `<name>_ply/000000.ply`                 | `point0000.ply` straight in the output directory   |

Published facts (`run.py`, `utils/dc_utils.py::save_video`): both videos are libx264, crf 18, at the front end's
fps; the depth video maps the whole video's min/max to `uint8((d - min) / (max - min) * 255)` through matplotlib's
inferno colours (`--grayscale`: the grey value itself); the npz is `np.savez_compressed(..., depths=...)`, float32
(N, H, W); each EXR holds one float32 channel `Z`; `run.py` always writes `_src` and `_vis` (so they are the
published layout's default `--save`), the npz with `--save_npz`, the EXRs with `--save_exr`, the point clouds
with `--metric`.
"""
from __future__ import annotations

FORMATS = ("npz", "src", "vis", "vis-depth", "exr", "png16", "ply")
LAYOUTS = ("default", "published")
DEFAULT_SAVE = {"default": "npz", "published": "src,vis"}
FOLDER_FORMATS = ("exr", "png16", "ply")  # one file per frame, in a folder (except published ply)

_FILES = {  # format -> (default layout, published layout); {name} is the input's output name
    "npz": ("{name}_depths.npz", "{name}_depths.npz"),
    "src": ("{name}_src.mp4", "{name}_src.mp4"),
    "vis": ("{name}_vis.mp4", "{name}_vis.mp4"),
    "vis-depth": ("{name}_vis_depth.mp4", "{name}_vis.mp4"),
}
_FOLDERS = {  # format -> ((folder, frame file) default, (folder, frame file) published); folder "" = output dir
    "exr": (("{name}_exr", "{i:06d}.exr"), ("{name}_depths_exr", "frame_{i:05d}.exr")),
    "png16": (("{name}_png16", "{i:06d}.png"), ("{name}_png16", "{i:06d}.png")),
    "ply": (("{name}_ply", "{i:06d}.ply"), ("", "point{i:04d}.ply")),
}


def _check(layout: str) -> int:
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    return LAYOUTS.index(layout)


def file_name(fmt: str, name: str, layout: str = "default") -> str:
    """The output file of a whole-video format (npz, src, vis, vis-depth)."""
    return _FILES[fmt][_check(layout)].format(name=name)


def folder_names(fmt: str, name: str, layout: str = "default") -> tuple[str, str]:
    """(folder, frame-file pattern with {i}) of a per-frame format; folder "" means the output directory itself."""
    folder, frame = _FOLDERS[fmt][_check(layout)]
    return folder.format(name=name), frame


def depth_only(fmt: str, layout: str = "default") -> bool:
    """Whether a video format shows the depth alone (else frames and depth side by side)."""
    return fmt == "vis-depth" or (fmt == "vis" and layout == "published")


def parse_save(text: str | None, layout: str = "default") -> list[str]:
    """`--save` text -> the formats, in the table's order, duplicates (incl. published vis / vis-depth) folded;
    ValueError names the unknown ones."""
    text = DEFAULT_SAVE[LAYOUTS[_check(layout)]] if text is None else text
    wanted = [f.strip() for f in text.split(",") if f.strip()]
    unknown = [f for f in wanted if f not in FORMATS]
    if unknown or not wanted:
        raise ValueError(f"--save takes a comma list of {','.join(FORMATS)}; got {text!r}")
    if layout == "published" and "vis" in wanted and "vis-depth" in wanted:
        wanted.remove("vis-depth")  # one file, <name>_vis.mp4
    return [f for f in FORMATS if f in wanted]
