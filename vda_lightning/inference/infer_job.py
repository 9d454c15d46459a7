"""What `vda infer` hands its job (`job.py`): each input's weight in frames, the settings that decide the bytes of
its outputs, the model's sha256, the output paths of one input, and Lightning-style `--devices N` started
through torchrun (the standard launcher; no scheduler of ours)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ..trust import display
from .distributed import digest, files_sha256
from .layouts import FOLDER_FORMATS, file_name, folder_names

# vda infer options that decide the bytes of the outputs (and so belong in the settings digest)
SETTINGS = ("encoder", "metric", "relative", "input_size", "max_res", "max_len", "target_fps", "precision", "mode",
            "backend", "layout", "grayscale", "npz_compress", "focal_length_x", "focal_length_y", "intrinsics",
            "speed_levers")


def input_weights(paths: list[Path], args) -> list[int]:
    """Each input's frame count as its header or folder listing says (1 when unknown or unreadable: the input
    then fails on its rank, which reports it)."""
    from .frame_sources import InputError, open_source

    weights = []
    for p in paths:
        try:
            n = open_source(p, max_res=args.max_res, max_len=args.max_len, target_fps=args.target_fps).expected_frames()
        except (InputError, OSError, ValueError):
            n = None
        weights.append(max(int(n or 1), 1))
    return weights


def infer_settings(args, formats: list[str], device) -> dict:
    settings = {k: getattr(args, k, None) for k in SETTINGS}
    settings["speed_levers"] = sorted(settings["speed_levers"] or [])
    intrinsics = settings["intrinsics"]
    if intrinsics and os.path.isfile(intrinsics):  # the camera's content, not its name, decides the clouds
        settings["intrinsics"] = files_sha256([intrinsics])
    return {**settings, "save": formats, "device_type": device.type}


def model_sha256(args) -> str:
    """sha256 of the checkpoint file, or of the ONNX export folder's files; a checkpoint named otherwise than by a
    local file (a model name resolved later) by the sha256 of its name."""
    if args.backend == "onnxruntime":
        return files_sha256(p for p in Path(args.onnx).iterdir() if p.is_file() and not p.name.startswith("."))
    if not os.path.isfile(args.checkpoint):
        return digest({"checkpoint name": str(args.checkpoint)})
    return files_sha256([args.checkpoint])


def output_paths(name: str, formats: list[str], layout: str, frames: int) -> list[str]:
    """The outputs of one input, relative to the output folder (a per-frame folder counts as one output; the
    published layout's point clouds lie loose in the output folder, one per frame)."""
    out = []
    for fmt in formats:
        if fmt not in FOLDER_FORMATS:
            out.append(file_name(fmt, name, layout))
            continue
        folder, frame = folder_names(fmt, name, layout)
        out += [folder] if folder else [frame.format(i=i) for i in range(frames)]
    return list(dict.fromkeys(out))


def remove_stale_staging(out_dir: Path, name: str, formats: list[str], layout: str) -> None:
    """What a killed run left of this input under temporary names: its outputs' atomic-write staging (when their
    writer is gone, `io.remove_stale_temporaries`; exact names, so another input's staging is never touched) and
    its depth spool."""
    import glob

    from ..io import remove_stale_temporaries

    for target in output_paths(name, formats, layout, 0):
        remove_stale_temporaries(out_dir, glob.escape(target))
    (out_dir / f".{name}.depths.f32.partial").unlink(missing_ok=True)


def relaunch_with_torchrun(argv: list[str], devices: int, num_nodes: int, prog: str, command: str = "infer") -> int:
    """`--devices N` outside a launcher: the same command under `torchrun --standalone --nproc-per-node N` (one
    node; several nodes come from srun or torchrun --nnodes, which set the ranks themselves)."""
    if num_nodes > 1:
        raise ValueError(f"--num-nodes {num_nodes}: start one process per device on every node with srun (vda "
                         "submit infer) or torchrun --nnodes; --devices alone starts them on this node only")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={devices}",
           "-m", "vda_lightning", command, *argv]
    print(f"{prog}: starting {devices} processes: {' '.join(display(c) for c in cmd)}", file=sys.stderr, flush=True)
    return subprocess.call(cmd)
