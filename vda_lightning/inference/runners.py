"""The runner interface, and the one place that chooses what runs: `vda infer` (cli.py), `infer_video` (api.py) and
`infer_video_depth` (offline.py) all build their runner with `make_runner`; `vda infer` opens its model with
`open_model` (PyTorch checkpoint or onnxruntime export, and the kind it predicts).

Two shapes, named so that a new runner or backend knows what to provide:

* `RunnerModel` (models/runner_model.py, on the models' floor so that deploy/ can declare it): what a runner calls
  on its model. `VideoDepthAnything` has it, and so has `OnnxRuntimeModel` (deploy/ort_backend.py), which is why
  both runners run unchanged on exported graphs.
* `DepthRunner`: `OfflineRunner` (key-frame windows) and `StreamingRunner` (one frame in, one out). `run(frames)`
  yields one float32 (H, W) map per frame, in order; `reads` / `compute` / `finish` are the same work cut into the
  three stages that `pipeline.run_pipelined` runs in three threads (`max_read`, `held_back` bound its memory).

Nothing heavy is imported here before a function runs (the CLI's `--help` stays torch-free).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..models.input_contract import DEFAULT_INPUT_SIZE
from ..models.runner_model import RunnerModel

if TYPE_CHECKING:
    import numpy as np
    import torch

__all__ = ["BACKENDS", "MODES", "DepthRunner", "RunnerModel", "make_runner", "open_model"]
MODES = ("offline", "streaming")
BACKENDS = ("pytorch", "onnxruntime")


@runtime_checkable
class DepthRunner(Protocol):
    """Frames in, depth maps out: uint8 RGB (H, W, 3) frames -> float32 (H, W) maps at the frames' size."""

    model: RunnerModel
    device: torch.device
    precision: str
    max_read: int  # most frames one read holds
    held_back: int  # frames the runner may hold between reads (the stitcher's overlap)

    def reads(self, frames: Iterable[np.ndarray]) -> Iterator[Any]:
        """Stage 1 (host): group and stage the frames; each item is what `compute` takes."""
        ...

    def compute(self, read: Any) -> Any:
        """Stage 2 (device): the model on one read; the result is what `finish` takes."""
        ...

    def finish(self, result: Any) -> list[np.ndarray]:
        """Stage 3 (host): the maps that became final, in frame order (possibly none)."""
        ...

    def run(self, frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """The three stages chained in this thread: one map per frame, in order."""
        ...


def make_runner(model: RunnerModel, mode: str = "offline", input_size: int = DEFAULT_INPUT_SIZE, device="auto",
                precision: str | None = None, *, speed_levers: Sequence[str] = ()) -> DepthRunner:
    """The runner for `mode` ("offline": the published key-frame windows; "streaming": the online mode).

    A PyTorch model runs on `device` ("auto": CUDA when visible) at `precision` (None: fp16 on CUDA, as published,
    fp32 elsewhere), with `speed_levers` applied (models/speed.py). Any other model (the onnxruntime graphs) gets
    host tensors in fp32: its session owns the providers, and the export fixed its precision. On the CPU the
    process keeps freed memory for reuse (`devices.keep_freed_host_memory`)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    import torch

    from ..devices import default_precision, keep_freed_host_memory, resolve_device
    from . import offline, streaming  # looked up at call time: tests stand in their own runner classes

    if isinstance(model, torch.nn.Module):
        device = resolve_device(device)
        precision = precision or default_precision(device)
    else:
        device, precision = resolve_device("cpu"), "fp32"
    if device.type == "cpu":
        keep_freed_host_memory()
    if speed_levers:
        from ..models.speed import apply_levers

        apply_levers(model, speed_levers)
    if mode == "streaming":  # a file's frames read ahead, so that the encoder sees them in one batch
        return streaming.StreamingRunner(model, input_size=input_size, device=device, precision=precision,
                                         read_ahead=streaming.default_read_ahead(model, device))
    return offline.OfflineRunner(model, input_size=input_size, device=device, precision=precision)


def open_model(backend: str, mode: str, *, checkpoint=None, onnx=None, encoder: str | None = None,
               metric: bool | None = None, device: str = "auto", precision: str | None = None
               ) -> tuple[RunnerModel, str]:
    """What `vda infer` runs on, in eval mode, and the line that says its kind and why.

    `backend` "pytorch": `checkpoint` loaded with `--metric/--relative` (`metric`) where its metadata does not say
    (`cli.options.load_model_kind`), moved to `device`, its kind resolved (`checkpoints.resolve_kind`).
    "onnxruntime": the export in `onnx` for `mode`, checked against `checkpoint`, `encoder` and `precision`; the
    sidecar says the kind unless `metric` overrides it. An `encoder` other than the file's is a CommandError."""
    from ..cli.errors import CommandError
    from ..cli.options import encoder_or_none, load_model_kind, resolve_device
    from ..trust.paths import display

    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "onnxruntime":
        from ..deploy.ort_backend import open_backend

        model = open_backend(onnx, mode, device, checkpoint=checkpoint, encoder=encoder_or_none(encoder),
                             precision=precision)
    else:
        device = resolve_device(device)
        model = load_model_kind(checkpoint, encoder_or_none(encoder), metric, expect="video")
    if encoder not in (None, "auto") and model.config.encoder != encoder:  # our files carry their config
        raise CommandError(f"{display(checkpoint)}: holds a {model.config.encoder} model, not --encoder {encoder}")
    if backend == "pytorch":
        from ..checkpoints import resolve_kind

        return resolve_kind(model.to(device).eval(), device, path=checkpoint)  # verdicts cached by sha256
    if metric is not None and metric != bool(model.config.metric):  # the export's sidecar says, unless overridden
        model.config = dataclasses.replace(model.config, metric=metric)
        why = "--metric" if metric else "--relative"
    else:
        why = "the export's sidecar"
    return model.eval(), f"{'metric depth' if model.config.metric else 'relative disparity'} model (from {why})"
