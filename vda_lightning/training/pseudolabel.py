"""`vda pseudolabel` (alias `vda-pseudolabel`): label image (or clip) shards offline with a frozen Depth Anything V2
teacher.

    vda pseudolabel 'shards/images/image-{000000..000099}.tar' --output shards/images_pl \
        --teacher-encoder vitl --teacher-checkpoint depth_anything_v2_vitl.pth [--input-size 518] [--device cuda]

Every input shard becomes a shard of the same name under --output with the teacher's disparity stored as
`depth_kind: pseudo_label` (float16 by default), which the DataModule then feeds as image targets instead of
running the teacher online. Undecodable samples are skipped and counted; finished shards are not redone.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections import Counter

from ..cli import errors
from ..cli.options import HelpFormatter, add_checkpoint, add_device, add_encoder, add_input_size, resolve_device

PROG = "vda-pseudolabel"


def label_frames(teacher, frames_uint8, input_size: int, device: str):
    """(T, H, W, 3) uint8 RGB -> (T, H, W) float32 teacher disparity at the frames' own resolution, exactly as
    the published Depth Anything V2 `infer_image` makes it (`Teacher.infer_image`)."""
    return teacher.infer_image(frames_uint8, input_size, device).cpu()


def label_shard(url: str, out_path: str, teacher, input_size: int, device: str, depth_encoding: str) -> Counter:
    """Label every sample of one shard into `out_path`. A sample that cannot be decoded, labelled or written
    under its key is skipped, counted under its reason (`data.format.SKIP_REASONS`) and logged with the shard and
    key, as the training stream does; the shard itself still completes."""
    from ..data.format import SKIP_REASONS, SampleError, decode_members
    from ..data.shards import ShardWriter
    from ..data.streams import SkipCounters, iter_tar_samples

    counts: Counter = Counter()
    skips = SkipCounters(max_workers=0, name="pseudolabel")
    with ShardWriter(out_path, depth_encoding=depth_encoding) as writer:
        for raw in iter_tar_samples(url, skips):
            where = f"{url}:{raw.get('__key__')}"
            try:
                rec = decode_members(raw)
                rec.depth = label_frames(teacher, rec.frames, input_size, device).numpy()
                rec.mask, rec.depth_kind, rec.depth_units = None, "pseudo_label", "unitless"
                rec.key = raw["__key__"]
                writer.write(rec)  # refuses (before writing anything) a key it cannot store
            except SampleError as e:
                skips.skip(e.reason, where, e.detail)
                continue
            except Exception as e:  # one bad sample must not end the run; the message names it
                skips.skip("other_error", where, f"{type(e).__name__}: {e}")
                continue
            skips.ok()
            counts["labelled"] += 1
    for reason, n in skips.as_dict().items():
        if n and reason in SKIP_REASONS:
            counts[f"skipped_{reason}"] += n
    return counts


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("shards", help="input shards: brace pattern, glob, folder or '::'-joined list")
    parser.add_argument("--output", required=True, help="output folder (shards keep their names)")
    add_encoder(parser, flag="--teacher-encoder", default="vitl", help="DAv2 size of the teacher")
    add_checkpoint(parser, flag="--teacher-checkpoint", help="DAv2 (or VDA) checkpoint of the teacher")
    add_input_size(parser, help="teacher input: shorter side (published: 518)")
    add_device(parser)
    parser.add_argument("--depth-encoding", choices=("f16", "f32"), default="f16", help="stored pseudo-label dtype")
    return parser


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    args = build_parser(prog).parse_args(argv)
    from ..checkpoints import CheckpointError

    return errors.run_command(prog, lambda: _label_all(args, prog), known=(CheckpointError, ValueError))


def _label_all(args, prog: str) -> int:
    from tqdm import tqdm

    from ..data.shards import expand_shards, shard_is_complete
    from .teacher import Teacher

    device = str(resolve_device(args.device))
    urls = expand_shards(args.shards, "shards")
    teacher = Teacher(args.teacher_encoder, args.teacher_checkpoint).to(device)
    from ..io import remove_stale_temporaries

    remove_stale_temporaries(args.output, "*")  # what a killed run left in the output folder
    total: Counter = Counter()
    for url in tqdm(urls, desc="pseudo-labelling", unit="shard"):
        out_path = os.path.join(args.output, os.path.basename(url))
        if shard_is_complete(out_path):
            total["shards_already_done"] += 1
            continue
        total.update(label_shard(url, out_path, teacher, args.input_size, device, args.depth_encoding))
    print(f"{prog}: " + ", ".join(f"{k} {v}" for k, v in sorted(total.items())))
    return errors.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
