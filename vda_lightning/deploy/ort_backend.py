"""`OnnxRuntimeModel(DIR)`: the exported graphs behind the interface the runners call on a `VideoDepthAnything`
(`forward_features`, `forward_depth`, `forward_step`, `config`, `to`), so `OfflineRunner` and `StreamingRunner`
run the same window plan, key-frame feature reuse, stitching, streaming cache and writers on onnxruntime.

Offline mode needs `encoder.onnx` + `head.onnx` (the runner reuses the encoder features of carried-over frames),
streaming mode `streaming.onnx`; each with its sidecar. Execution providers: TensorRT, then CUDA, then CPU, as
onnxruntime offers them (`device="cpu"` forces the CPU). Tensors cross as numpy arrays on the host.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..models.input_contract import is_multiple_size
from ..models.runner_model import RunnerModel
from ..trust import display
from .schema import ROLE
from .sidecar import SidecarError, read_sidecar
from .signatures import CACHE_NAMES, FILE_NAMES, dim_value, graph_io, kind_of, static_dims_differ

PROVIDER_ORDER = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
MODE_GRAPHS = {"offline": ("encoder", "head"), "streaming": ("stream",), "video": ("video",)}


class OnnxBackendError(ValueError):
    """An export folder or input the backend cannot use; the message is one line naming the file."""


def import_onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise OnnxBackendError("onnxruntime is not installed: pip install 'vda-lightning[onnx]'") from None
    return onnxruntime


def select_providers(device: str = "auto", available: list[str] | None = None) -> list[str]:
    """The execution providers to ask for, best first; `device` auto / cpu / cuda."""
    if available is None:
        available = import_onnxruntime().get_available_providers()
    if str(device) == "cpu":
        return ["CPUExecutionProvider"]
    chosen = [p for p in PROVIDER_ORDER if p in available]
    if str(device) == "cuda" and not any(p != "CPUExecutionProvider" for p in chosen):
        raise OnnxBackendError("--device cuda: this onnxruntime has no CUDA or TensorRT execution provider "
                               f"(it offers {', '.join(available)}; install onnxruntime-gpu)")
    return chosen or ["CPUExecutionProvider"]


def make_session(path: str | os.PathLike, device: str = "auto", threads: int = 0, fp16: bool = False):
    """An onnxruntime InferenceSession on the chosen providers (TensorRT with an engine cache beside the file)."""
    ort = import_onnxruntime()
    path = Path(path)
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.log_severity_level = 3  # errors only: the shape-guard reshape of a bad input is reported by us
    # No busy-waiting between runs: the runner's own work (pre-processing, stitching, writers) and the other
    # sessions share the cores, and spinning idle threads slowed them down several times on 2 cores.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    providers = []
    for name in select_providers(device):
        if name == "TensorrtExecutionProvider":
            cache = path.parent / ".trt_cache"
            providers.append((name, {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache),
                                     "trt_fp16_enable": bool(fp16)}))
        else:
            providers.append(name)
    try:
        return ort.InferenceSession(str(path), options, providers=providers)
    except Exception as e:  # onnxruntime raises its own types (Fail, InvalidGraph, ...) on a bad file
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        raise OnnxBackendError(f"{display(path)}: onnxruntime cannot load it ({first})") from None


def check_session(session, kind: str, config, path) -> None:
    """What the loaded file really is, from its input and output names (`signatures.kind_of`) and fixed sizes: the
    `kind` graph of a model of `config`, or OnnxBackendError in one line naming the file and what it is."""
    inputs = {i.name: list(i.shape) for i in session.get_inputs()}
    outputs = {o.name: list(o.shape) for o in session.get_outputs()}
    found = kind_of(list(inputs), list(outputs), config)
    if found != kind:
        what = f"the {ROLE[found]} ({FILE_NAMES[found]})" if found else (
            f"no graph of a vda-lightning export (inputs {', '.join(list(inputs)[:4])[:120]})")
        raise OnnxBackendError(f"{display(path)}: is {what}, not the {ROLE[kind]} its name and sidecar say; "
                               "re-export with vda export --format onnx")
    problem = static_dims_differ(kind, config, inputs, outputs)
    if problem:
        raise OnnxBackendError(f"{display(path)}: {problem} (the graph is not the {config.encoder} model its sidecar "
                               "describes; re-export)")


class OnnxRuntimeModel(RunnerModel):
    """A stand-in for `VideoDepthAnything` in the runners (it follows `models.runner_model.RunnerModel`), backed by
    the ONNX files in `folder`.

    `mode`: "offline" (encoder + head), "streaming" (the online step) or "video" (the whole model, `__call__`;
    `folder` may then name the .onnx file itself).
    """

    def __init__(self, folder: str | os.PathLike, mode: str = "offline", device: str = "auto", threads: int = 0):
        from ..models.configs import ModelConfig

        self.folder = Path(folder)
        if mode not in MODE_GRAPHS:
            raise ValueError(f"mode must be one of {sorted(MODE_GRAPHS)}, got {mode!r}")
        if not (self.folder.is_dir() or (mode == "video" and self.folder.suffix == ".onnx")):
            raise OnnxBackendError(f"{display(self.folder)}: no such folder of exported ONNX files")
        self.mode = mode
        self.sidecars, self.sessions, self.paths = {}, {}, {}
        for kind in MODE_GRAPHS[mode]:
            path = self.folder / FILE_NAMES[kind]
            if kind == "video" and self.folder.suffix == ".onnx":  # the whole model may have any name
                path, self.folder = self.folder, self.folder.parent
            self.paths[kind] = path
            if not os.path.lexists(path):
                flag = {"encoder": "--parts", "head": "--parts", "stream": "--streaming", "video": ""}[kind]
                raise OnnxBackendError(f"{display(path)}: missing; {mode} mode needs it (export with vda-export "
                                       f"--format onnx {flag})".replace(" )", ")"))
            try:  # schema-checked, and describing the `kind` graph under its own name (deploy/schema.py)
                self.sidecars[kind] = read_sidecar(path, kind=kind)
            except SidecarError as e:
                raise OnnxBackendError(str(e)) from None
        first = next(iter(self.sidecars.values()))
        for kind, side in self.sidecars.items():
            if (side.get("source_checkpoint"), side["precision"], side["model_config"]) != (
                    first.get("source_checkpoint"), first["precision"], first["model_config"]):
                raise OnnxBackendError(f"{display(self.folder)}: {FILE_NAMES[kind]} and {first['file']} come from "
                                       "different exports (checkpoint, precision or config differ)")
        self.config = ModelConfig.from_dict(first["model_config"])
        self.precision = first["precision"]
        self.contract = first["input_contract"]
        for kind in self.sidecars:
            session = make_session(self.paths[kind], device, threads, fp16=self.precision == "fp16")
            check_session(session, kind, self.config, self.paths[kind])
            self.sessions[kind] = session
        self.providers = self.sessions[next(iter(self.sessions))].get_providers()

    # -- the nn.Module surface the runners touch
    def to(self, device):
        return self

    def eval(self):
        return self

    def _check_size(self, kind: str, height: int, width: int) -> None:
        if not is_multiple_size((height, width), self.config.patch_size):
            raise OnnxBackendError(f"{self.paths[kind]}: input of {height}x{width}: height and width "
                                   f"must be multiples of {self.config.patch_size} (see the sidecar's input_contract)")

    def _run(self, kind: str, feeds: dict) -> list[np.ndarray]:
        feeds = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in feeds.items()}
        try:
            return self.sessions[kind].run(None, feeds)
        except Exception as e:  # onnxruntime's own types (InvalidArgument, Fail, ...): one line naming the file
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
            raise OnnxBackendError(f"{display(self.paths[kind])}: onnxruntime failed to run it ({first})") from None

    def forward_features(self, x):
        """(N, 3, H, W) -> four (tokens (N, h*w, D), cls (N, D)) pairs, as torch tensors."""
        import torch

        self._check_size("encoder", *x.shape[-2:])
        outs = self._run("encoder", {"frames": _numpy(x)})
        return [(torch.from_numpy(outs[2 * i]), torch.from_numpy(outs[2 * i + 1])) for i in range(4)]

    def forward_depth(self, features, height: int, width: int, batch: int, num_frames: int, cached=None,
                      outputs: int | None = None):
        """Head on the features of batch*num_frames frames -> ((B, T, H, W) depth, no states); `outputs`: the
        first frames' maps only (the graph computes them all)."""
        import torch

        if cached is not None:
            raise OnnxBackendError(f"{self.folder}: the exported head runs whole clips; the online mode uses "
                                   f"{FILE_NAMES['stream']} (forward_step)")
        self._check_size("head", height, width)
        h, w = height // self.config.patch_size, width // self.config.patch_size
        feeds = {f"tokens_{i}": _numpy(tokens).reshape(batch, num_frames, h, w, -1)
                 for i, (tokens, _cls) in enumerate(features)}
        depth = torch.from_numpy(self._run("head", feeds)[0])
        return (depth if outputs is None else depth[:, :outputs]), []

    def forward_step(self, x, height: int, width: int, cached=None):
        """One online step: frames (B, 3, H, W) + the 8 cached state tensors (B*S, Tc, C), or None on the first
        frame -> ((B, 1, H, W) depth, the new frames' 8 states (B*S, 1, C))."""
        import torch

        self._check_size("stream", height, width)
        feeds = {"frame": _numpy(x)}
        if cached is None:
            patch = self.config.patch_size
            sizes = {"batch": x.shape[0], "h": height // patch, "w": width // patch, "context": 0}
            inputs, _ = graph_io("stream", self.config)
            cached = [np.zeros([dim_value(d, sizes) for d in inputs[f"cache_{n}"]], np.float32) for n in CACHE_NAMES]
        feeds.update({f"cache_{n}": _numpy(c) for n, c in zip(CACHE_NAMES, cached)})
        outs = self._run("stream", feeds)
        return torch.from_numpy(outs[0][:, None]), [torch.from_numpy(s) for s in outs[1:]]

    def __call__(self, frames):
        """The whole model (mode "video"): (B, T, 3, H, W) -> (B, T, H, W), numpy in and out."""
        if "video" not in self.sessions:
            raise OnnxBackendError(f"{self.folder}: opened for {self.mode} mode; use mode='video' for "
                                   f"{FILE_NAMES['video']}")
        self._check_size("video", *frames.shape[-2:])
        return self._run("video", {"frames": _numpy(frames)})[0]


def _numpy(x) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return x
    return x.detach().cpu().float().numpy()


def open_backend(folder, mode: str, device: str = "auto", threads: int = 0, checkpoint=None, encoder=None,
                 precision=None) -> OnnxRuntimeModel:
    """`vda infer --backend onnxruntime`: the backend for `mode`, checked against the options given with it
    (--encoder, --precision, and --checkpoint: the export must come from that file)."""
    model = OnnxRuntimeModel(folder, mode=mode, device=device, threads=threads)
    if encoder not in (None, "auto") and model.config.encoder != encoder:
        raise OnnxBackendError(f"{display(folder)}: holds a {model.config.encoder} export, not --encoder {encoder}")
    if precision is not None and precision != model.precision:
        raise OnnxBackendError(f"{display(folder)}: holds an {model.precision} export; --precision {precision} needs "
                               f"an export in that precision (vda export --fp16 for fp16)")
    if checkpoint is not None:
        from .sidecar import file_sha256

        source = next(iter(model.sidecars.values())).get("source_checkpoint") or {}
        if source.get("sha256") != file_sha256(checkpoint):
            origin = display(source.get("path", "an unrecorded checkpoint"))
            raise OnnxBackendError(f"{display(folder)}: exported from {origin}, not from --checkpoint "
                                   f"{display(checkpoint)}")
    return model
