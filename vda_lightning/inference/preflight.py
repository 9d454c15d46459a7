"""`vda infer`'s checks before weight: everything the command line and the files' own records can refuse is refused
before torch is imported or a model is loaded, so a mistake costs well under a second (issue 28: a missing input
took 52 s under load to be named, a `--save ply` refusal 53 s).

Checked here, in this order, each a one-line error: the checkpoint (exists, is a regular readable file that holds
weights: `cli.preflight.checked_weights`, which every command shares), the onnxruntime export folder, what the
model's record says against what was asked (`--metric`/`--relative` against its metadata, `--save ply` against a
relative kind, a canonical-camera metric model without a camera), and each input (exists, a folder or a regular
readable file: `cli.preflight.unusable_input`).
The kind comes from the file's metadata or published name (`checkpoints.peek.peek_kind`), else, only when
`--save ply` needs it, from the probe's verdict cached by the file's sha256 (`checkpoints.probe_cache`); a file
that says nothing is left to the load and its probe, as before. Nothing here imports torch.
"""
from __future__ import annotations

import os

from ..checkpoints.peek import KindHint, peek_kind
from ..cli.errors import CommandError
from ..cli.preflight import checked_weights, unusable_input
from ..trust import display

__all__ = ["check_before_loading", "check_kind", "ply_refusal", "unusable_input", "unusable_inputs"]


def ply_refusal(source, from_metadata: bool, from_command_line: bool = False) -> CommandError:
    """Point clouds need metres: the error for a relative model (with the hint to say otherwise, unless the
    file's own metadata is what says relative); a kind the user gave (--relative) is named as theirs."""
    said = ", from the command line" if from_command_line else ""
    hint = "" if from_metadata else "; pass --metric if it predicts metres"
    return CommandError(f"{display(source)}: --save ply needs a metric model (this one predicts relative "
                        f"disparity{said}{hint})")


def cached_probe_kind(checkpoint) -> KindHint:
    """The probe's remembered verdict for this file's bytes (sha256), or a hint that says nothing."""
    from ..checkpoints import probe_cache
    from ..checkpoints.read import file_sha256

    verdict = probe_cache.lookup(file_sha256(checkpoint))
    if verdict is None or verdict["metric"] is None:
        return KindHint(None, "none", None)
    return KindHint(verdict["metric"], "probe", None)


def check_kind(args, formats: list[str], camera) -> None:
    """CommandError when the file's record rules out what was asked (module docstring)."""
    from ..checkpoints.hub import checkpoint_path
    from ..cli.options import metadata_refusal

    path = checkpoint_path(args.checkpoint)
    hint = peek_kind(path)
    if args.metric is not None and hint.source == "metadata" and hint.metric != args.metric:
        raise metadata_refusal(args.checkpoint, hint.metric, args.metric)
    metric = args.metric if args.metric is not None else hint.metric
    if metric is None and "ply" in formats:  # only here does the kind decide before the load: the probe's verdict
        hint = cached_probe_kind(path)
        metric = hint.metric
    if "ply" in formats and metric is False:
        raise ply_refusal(args.checkpoint, hint.source == "metadata", args.metric is False)
    if metric and hint.config is not None:
        from ..models.configs import ModelConfig
        from .camera import missing_camera

        problem = missing_camera(ModelConfig.from_dict(hint.config), camera)
        if problem:
            raise CommandError(f"{display(args.checkpoint)}: {problem}; give this camera with --focal-length-x/-y "
                               "or --intrinsics")


def unusable_inputs(items: list[str]) -> dict[str, str]:
    """{input: why} for the inputs that cannot be read (`unusable_input`)."""
    found = {item: unusable_input(item) for item in items}
    return {item: why for item, why in found.items() if why}


def check_before_loading(args, formats: list[str], camera) -> None:
    """A one-line error (CommandError, CheckpointError) when the command cannot run at all (module docstring).
    A Hub name is checked by the table's kind only: its file is fetched by the load."""
    if str(args.device).startswith("cuda"):  # an option before the files; only asking for CUDA needs torch here
        from ..cli.options import resolve_device

        resolve_device(args.device)
    if args.backend != "pytorch":
        if not os.path.isdir(args.onnx):
            raise CommandError(f"{display(args.onnx)}: no such folder of exported ONNX files")
        return
    from ..checkpoints.hub import PUBLISHED_MODELS

    if checked_weights(args.checkpoint) is None:  # a Hub name: the table's kind only, the load fetches the file
        known = PUBLISHED_MODELS.get(args.checkpoint)
        if known is not None and args.metric is None and "ply" in formats and known.kind == "relative":
            raise ply_refusal(args.checkpoint, False)
        return
    check_kind(args, formats, camera)
