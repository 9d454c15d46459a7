"""`vda pseudolabel` (alias `vda-pseudolabel`): label image (or clip) shards offline with a frozen Depth Anything V2
teacher.

    vda pseudolabel 'shards/images/image-{000000..000099}.tar' --output shards/images_pl \
        --teacher-encoder vitl --teacher-checkpoint depth_anything_v2_vitl.pth [--input-size 518] [--device cuda]

Every input shard becomes a shard of the same name under --output with the teacher's disparity stored as
`depth_kind: pseudo_label` (float16 by default), which the DataModule then feeds as image targets instead of
running the teacher online. Undecodable samples are skipped and counted; finished shards are not redone.

Under torchrun or srun (`vda submit pseudolabel`) each rank labels its share of the shards, balanced by their
bytes (`inference/job.py`); with a job folder (`--job-dir`, default `<output>/.vda-job` under a launcher) a shard
is complete when its record names this teacher checkpoint's sha256 and these settings and the shard and its index
are whole; a re-run labels only the rest, and the job's manifest.json lists every shard once.
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
    parser.add_argument("shards", nargs="?", help="input shards: brace pattern, glob, folder or '::'-joined list")
    parser.add_argument("--inputs", dest="inputs_list", metavar="LIST.txt",
                        help="a text file of shard paths, one a line (blank lines and # comments skipped)")
    parser.add_argument("--job-dir", default=None, metavar="DIR",
                        help="job folder: completion records, progress, manifest.json (default under a launcher: "
                             "<output>/.vda-job)")
    parser.add_argument("--output", required=True, help="output folder (shards keep their names)")
    add_encoder(parser, flag="--teacher-encoder", default="vitl", help="DAv2 size of the teacher")
    add_checkpoint(parser, flag="--teacher-checkpoint", help="DAv2 (or VDA) checkpoint of the teacher")
    add_input_size(parser, help="teacher input: shorter side (published: 518)")
    add_device(parser)
    parser.add_argument("--depth-encoding", choices=("f16", "f32"), default="f16", help="stored pseudo-label dtype")
    return parser


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if not args.shards and not args.inputs_list:
        parser.error("the following arguments are required: shards (or --inputs LIST.txt)")
    from ..checkpoints import CheckpointError

    return errors.run_command(prog, lambda: _label_all(args, prog, check_inputs(args)),
                              known=(CheckpointError, ValueError))


def check_inputs(args) -> list[str]:
    """The input shards, once everything `vda pseudolabel` can refuse before torch is imported has been checked
    (issue 28, checks before weight): the shards exist (`expand_shards`, `--inputs`), no two share a name, the output
    is not a file, the teacher checkpoint holds weights (`cli.preflight.checked_weights`; a Hub name is the load's)."""
    from ..cli.preflight import checked_weights
    from ..data.shards import expand_shards
    from ..trust import display, read_path_list

    urls = expand_shards(args.shards, "shards") if args.shards else []
    if args.inputs_list:
        urls += read_path_list(args.inputs_list, "--inputs list", error=ValueError)
    names = [os.path.basename(u) for u in urls]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"shards named {', '.join(twice[:3])} come more than once; outputs keep the input names, "
                         "so each name may appear once")
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        raise errors.CommandError(f"{display(args.output)}: --output is a file, not a folder")
    checked_weights(args.teacher_checkpoint)
    return urls


def _shard_job(args, urls: list[str], prog: str, device: str):
    from ..inference.distributed import files_sha256
    from ..inference.job import ShardedJob
    from ..io import launch_rank_world

    _, world, _ = launch_rank_world()
    job_dir = args.job_dir or (os.path.join(args.output, ".vda-job") if world > 1 else None)
    weights = [os.path.getsize(u) if os.path.isfile(u) else 1 for u in urls]
    settings = {"teacher_encoder": args.teacher_encoder, "input_size": args.input_size,
                "depth_encoding": args.depth_encoding, "device_type": device.split(":")[0]}
    checkpoint = files_sha256([args.teacher_checkpoint]) if job_dir and args.teacher_checkpoint else ""
    return ShardedJob(prog=prog, command="vda pseudolabel", inputs=urls, names=[os.path.basename(u) for u in urls],
                      weights=weights, job_dir=job_dir, out_dir=args.output, checkpoint_sha256=checkpoint,
                      settings=settings, unit="bytes")


def _label_all(args, prog: str, urls: list[str]) -> int:
    """Label `urls` (`check_inputs`' shards)."""
    import glob

    from ..data.shards import index_path, shard_is_complete
    from ..io import launch_rank_world, remove_stale_temporaries
    from .teacher import Teacher

    names = [os.path.basename(u) for u in urls]
    device = args.device
    _, world, local_rank = launch_rank_world()
    if world > 1 and device in ("auto", "cuda"):
        import torch

        if torch.cuda.is_available():
            device = f"cuda:{local_rank % torch.cuda.device_count()}"
    device = str(resolve_device(device))
    job = _shard_job(args, urls, prog, device)
    job.log_share()
    teacher = Teacher(args.teacher_encoder, args.teacher_checkpoint).to(device)
    total: Counter = Counter()
    with job:
        for i in job.share:
            url, out_path = urls[i], os.path.join(args.output, names[i])
            record = job.completed(i)
            if record is not None and shard_is_complete(out_path):
                job.reuse(i, record, done=job.weights[i])
                total["shards_already_done"] += 1
                continue
            if job.job_dir is None and shard_is_complete(out_path):
                total["shards_already_done"] += 1
                continue
            for target in (names[i], os.path.basename(index_path(out_path))):  # what a killed run left of it
                remove_stale_temporaries(args.output, glob.escape(target))
            counts = label_shard(url, out_path, teacher, args.input_size, device, args.depth_encoding)
            total.update(counts)
            job.tick(job.weights[i])
            job.complete(i, [names[i], os.path.basename(index_path(out_path))], counts["labelled"])
    who = f"rank {job.rank}/{job.world}: " if job.world > 1 else ""
    print(f"{prog}: {who}" + ", ".join(f"{k} {v}" for k, v in sorted(total.items())))
    job.finish()
    return errors.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
