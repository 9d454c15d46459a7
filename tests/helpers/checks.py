"""Numerical checks of devices and precisions: the comparison logic behind `tests/cuda/` (which `vda bench gpu`
runs), `tests/test_precision.py` and `tests/test_speed.py`.

Every function takes a device and runs on the CPU as well as on CUDA, so the normal (CPU) test suite exercises the
same code the GPU suite relies on: fp32 parity against the golden outputs of the published code, fp16/bf16 autocast
against fp32 (accuracy, NaN, black frames, flicker), the long-video and streaming runners, a training step under
Lightning's mixed precision with gradient checkpointing on and off, and memory per window.

Tolerances are stated once, in `TOLERANCES`, with where they come from. Error measures:
* max_rel  — max |out - ref| / max |ref| (the golden parity bar's form, per frame, worst frame);
* mean_rel — mean |out - ref| / mean |ref|;
* flicker  — mean absolute temporal difference, mean |d[t+1] - d[t]| over frames and pixels (what a viewer sees as
  shimmer; reduced-precision failures show up as a higher flicker than fp32's on the same video);
* black frames — frames whose value range is under 1e-3 of the video's range (one flat colour when visualised, the
  failure users report for fp16, Video Depth Anything issues #92 and #97).
"""
from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterable

import numpy as np
import torch

# The suites' inputs are the benchmarks' own (bench/workloads.py), re-exported so that a test reaches all through here.
from vda_lightning.bench.workloads import perturbed_model as perturbed_model
from vda_lightning.bench.workloads import precision_context
from vda_lightning.bench.workloads import synthetic_train_batch as synthetic_train_batch

# Per precision: the bars a reduced-precision output must meet against the fp32 output of the same input.
# fp32 vs the published code's CPU float32 outputs: the project's parity bar (tests/test_infer_parity.py).
# bf16 (8-bit mantissa, 2^-8 = 3.9e-3 per rounding): measured on the CPU with the golden vits weights at
# max_rel 1.6e-2..2.0e-2 and mean_rel 1.3e-2..1.7e-2 (cases a, b, c); the bars leave ~2.5x headroom.
# fp16 (11-bit mantissa, 8x finer than bf16): the bars are bf16's divided by 5; they hold only where the output
# convolutions run in fp32 (in fp16 they lose the low-contrast detail: the published fix for #92/#97).
# flicker_factor: flicker(out) <= factor * flicker(fp32) on the golden long video (70 frames, 4 windows).
TOLERANCES: dict[str, dict[str, float]] = {
    "fp32": {"max_rel": 1e-4, "mean_rel": 1e-5, "flicker_factor": 1.01},
    "fp16": {"max_rel": 1e-2, "mean_rel": 7e-3, "flicker_factor": 1.10},
    "bf16": {"max_rel": 5e-2, "mean_rel": 4e-2, "flicker_factor": 1.25},
}
# Training step under Lightning's precision plugins vs "32-true" on the same batch and weights.
# * loss_rel: |loss - loss32| / |loss32| of the full training_step (forward + loss inside the plugin's autocast).
# * grad_rel = ||g - g32|| / ||g32|| and grad_cos over all head parameters, for the SAME upstream gradient
#   dL/dprediction (fp32's): the mixed-precision backward through the network. The full step's parameter gradients
#   are not comparable across precisions: the spatial loss's gradient is discontinuous in the prediction (the
#   median, and |.| of the multi-scale gradient residuals) — an fp32 perturbation of the prediction by 1e-4
#   relative already moves dL/dprediction by ~66 % (measured) — so they are reported for information only.
# bf16 measured on the CPU (vitt, one 3-frame clip + one image): at 42x42 loss_rel 3.6e-4, grad_rel 2.7e-2
# (cos 0.9996); at 56x56 (two 4-frame clips) 2.1e-3, 2.2e-2; at 28x28 grad_rel reaches 8.9e-2 (few pixels per
# gradient sum). fp16 has 3 more mantissa bits: its bars are bf16's divided by ~5.
TRAIN_TOLERANCES: dict[str, dict[str, float]] = {
    "32-true": {"loss_rel": 1e-6, "grad_rel": 1e-5, "grad_cos": 0.99999},
    "bf16-mixed": {"loss_rel": 2e-2, "grad_rel": 0.1, "grad_cos": 0.995},
    "16-mixed": {"loss_rel": 5e-3, "grad_rel": 2e-2, "grad_cos": 0.9998},
}
# Gradient checkpointing recomputes the same operations: off vs on at the same precision, full training_step
# gradients (identical predictions, so the loss's discontinuity does not enter). Measured 0 on the CPU; the bar
# leaves room for CUDA's non-deterministic backward kernels (atomic adds in interpolate/conv backward).
CHECKPOINTING_TOLERANCE = {"loss_rel": 1e-6, "grad_rel": 1e-4}
BLACK_RANGE = 1e-3


def as_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float32)


def max_rel_error(out, ref) -> float:
    """max over frames of max |out - ref| / max |ref| (frames along the first axis after flattening B, T)."""
    out, ref = as_numpy(out), as_numpy(ref)
    if out.shape != ref.shape:
        raise ValueError(f"shapes differ: {out.shape} vs {ref.shape}")
    scale = float(np.abs(ref).max()) or 1.0
    return float(np.abs(out.astype(np.float64) - ref).max() / scale)


def mean_rel_error(out, ref) -> float:
    out, ref = as_numpy(out).astype(np.float64), as_numpy(ref).astype(np.float64)
    return float(np.abs(out - ref).mean() / (np.abs(ref).mean() or 1.0))


def frames_of(depths) -> np.ndarray:
    """(B, T, H, W) or (T, H, W) -> (N, H, W) frames."""
    d = as_numpy(depths)
    return d.reshape(-1, *d.shape[-2:])


def flicker(depths) -> float:
    """Mean absolute temporal difference mean |d[t+1] - d[t]| of a (T, H, W) video (B, T, H, W: per clip)."""
    d = as_numpy(depths).astype(np.float64)
    if d.ndim == 3:
        d = d[None]
    if d.shape[1] < 2:
        raise ValueError("flicker needs at least two frames")
    return float(np.abs(np.diff(d, axis=1)).mean())


def black_frames(depths, rel: float = BLACK_RANGE) -> int:
    """Frames whose range max - min is under `rel` of the whole video's range (flat when visualised)."""
    d = frames_of(depths)
    span = float(d.max() - d.min())
    per_frame = d.reshape(len(d), -1)
    per_frame = per_frame.max(axis=1) - per_frame.min(axis=1)
    return int((per_frame <= rel * span).sum()) if span > 0 else len(d)


def compare(out, ref, *, temporal: bool = True) -> dict:
    """Everything the precision checks look at, for an output and its reference of the same shape."""
    o = as_numpy(out)
    finite = np.isfinite(o)
    report = {
        "shape": list(o.shape),
        "nonfinite": int((~finite).sum()),
        "max_rel": max_rel_error(np.where(finite, o, 0), ref) if finite.any() else math.inf,
        "mean_rel": mean_rel_error(np.where(finite, o, 0), ref),
        "black_frames": black_frames(np.where(finite, o, 0)),
        "black_frames_ref": black_frames(ref),
    }
    if temporal and o.ndim >= 3 and o.shape[-3] > 1:
        report["flicker"] = flicker(np.where(finite, o, 0))
        report["flicker_ref"] = flicker(ref)
        report["flicker_ratio"] = report["flicker"] / report["flicker_ref"] if report["flicker_ref"] else math.inf
    return report


def failures(report: dict, precision: str, *, check_flicker: bool = True) -> list[str]:
    """The bars of `TOLERANCES[precision]` that `report` (from `compare`) misses, as readable lines."""
    tol = TOLERANCES[precision]
    bad = []
    if report["nonfinite"]:
        bad.append(f"{report['nonfinite']} non-finite values")
    if report["black_frames"] > report["black_frames_ref"]:
        bad.append(f"{report['black_frames']} black frames (reference: {report['black_frames_ref']})")
    for key in ("max_rel", "mean_rel"):
        if not report[key] <= tol[key]:
            bad.append(f"{key} {report[key]:.3g} > {tol[key]:g}")
    if check_flicker and "flicker_ratio" in report and not report["flicker_ratio"] <= tol["flicker_factor"]:
        bad.append(f"flicker {report['flicker_ratio']:.3f}x fp32's > {tol['flicker_factor']}x")
    return bad


# --------------------------------------------------------------------------------------------- model forward
@contextlib.contextmanager
def strict_fp32(enabled: bool = True):
    """fp32 that is fp32 on GPUs with TF32 (Ampere and later): cuDNN convolutions use TF32 (a 10-bit mantissa) by
    default, which alone moves outputs by ~1e-3 — ten times the parity bar. The references are true fp32."""
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    if enabled:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


@contextlib.contextmanager
def record_output_conv_dtypes(model):
    """Records the input and output dtypes of the head's final convolutions (`output_conv2`) while active."""
    seen: list[tuple[torch.dtype, torch.dtype]] = []
    head = model.head if hasattr(model, "head") else model.depth_head
    hooks = [m.register_forward_hook(lambda _m, args, out: seen.append((args[0].dtype, out.dtype)))
             for m in head.scratch.output_conv2 if isinstance(m, torch.nn.Conv2d)]
    try:
        yield seen
    finally:
        for h in hooks:
            h.remove()


@torch.inference_mode()
def forward(model, x: torch.Tensor, device, precision: str) -> tuple[torch.Tensor, list]:
    """model(x) on `device` under the runners' autocast for `precision`; also the output convolutions' dtypes."""
    from vda_lightning.devices import autocast

    device = torch.device(device)
    with strict_fp32(precision == "fp32"), record_output_conv_dtypes(model) as dtypes, autocast(device, precision):
        out = model(x.to(device))
    return out.float().cpu(), sorted({str(t) for pair in dtypes for t in pair})


def forward_cases(model, cases: dict, device, precision: str, names: Iterable[str] = ("a", "b", "c")) -> dict:
    """Golden forward cases ({name}.input -> {name}.output, published CPU fp32) on `device` at `precision`.

    fp32 is compared with the golden output; fp16/bf16 with this device's own fp32 output (and with the golden one
    for information), so the figure isolates the precision's cost from the device's fp32 rounding.
    """
    model = model.to(device).eval()
    rows = {}
    for name in names:
        x, golden = cases[f"{name}.input"], cases[f"{name}.output"]
        out, dtypes = forward(model, x, device, precision)
        row = {"vs_golden": compare(out, golden, temporal=False), "output_conv_dtypes": dtypes}
        if precision != "fp32":
            ref, _ = forward(model, x, device, "fp32")
            row["vs_fp32"] = compare(out, ref, temporal=False)
            row["fails"] = failures(row["vs_fp32"], precision, check_flicker=False)
        else:
            row["fails"] = failures(row["vs_golden"], "fp32", check_flicker=False)
        if dtypes != ["torch.float32"]:
            row["fails"].append(f"output convolutions ran in {dtypes}, not float32")
        rows[name] = row
    return rows


def run_video(model, frames, input_size: int, device, precision: str, mode: str = "offline",
              threaded: bool = False) -> np.ndarray:
    """The long-video runner (offline windows) or the streaming mode over uint8 (T, H, W, 3) frames."""
    from vda_lightning.inference.offline import OfflineRunner
    from vda_lightning.inference.streaming import StreamingRunner

    runner = (OfflineRunner if mode == "offline" else StreamingRunner)(model, input_size, device, precision)
    with strict_fp32(precision == "fp32"):
        if threaded:
            from vda_lightning.inference.pipeline import run_pipelined

            out: list[np.ndarray] = []
            run_pipelined(runner, iter(frames), out.append)
            return np.stack(out)
        return np.stack(list(runner.run(iter(frames))))


def video_case(model, frames, golden: np.ndarray, input_size: int, device, precision: str,
               mode: str = "offline", fp32_out: np.ndarray | None = None) -> dict:
    """A golden video case on `device`: fp32 vs the golden depths; fp16/bf16 vs this device's fp32, with flicker."""
    out = run_video(model, frames, input_size, device, precision, mode)
    row = {"vs_golden": compare(out, golden)}
    if precision == "fp32":
        row["fails"] = failures(row["vs_golden"], "fp32")
        row["fp32_out"] = out
    else:
        ref = fp32_out if fp32_out is not None else run_video(model, frames, input_size, device, "fp32", mode)
        row["vs_fp32"] = compare(out, ref)
        row["fails"] = failures(row["vs_fp32"], precision)
    return row


# --------------------------------------------------------------------------------------------- training step
def _head_grads(module) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().float().clone() for n, p in module.model.head.named_parameters() if p.grad is not None}


def train_step(module, batch: dict, precision: str = "32-true", checkpointing: bool = False) -> dict:
    """One `training_step` + backward of a `VideoDepthModule` as Lightning runs it: the step's forward and loss
    inside the precision plugin's autocast, backward outside. Returns the loss and the head's gradients.
    (16-mixed's loss scaling is left out: with a constant scale the unscaled gradients are the same numbers.)"""
    module.model.head.gradient_checkpointing = checkpointing
    module.train()
    module.zero_grad(set_to_none=True)
    with strict_fp32(precision == "32-true"):
        with warnings.catch_warnings(), precision_context(precision, module.device):
            warnings.filterwarnings("ignore", message=".*self.log.*")  # no Trainer attached: logging is a no-op
            loss = module.training_step(batch, 0)
        loss.backward()
    grads = _head_grads(module)
    module.zero_grad(set_to_none=True)
    return {"loss": float(loss.detach()), "grads": grads}


def upstream_gradient(module, frames: torch.Tensor, disparity: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """dL/dprediction of the video loss at the fp32 prediction."""
    module.train()
    with strict_fp32():
        pred = module(frames).detach().requires_grad_(True)
        loss = module.video_loss(pred, disparity, mask)["total_loss"]
        return torch.autograd.grad(loss, pred)[0]


def backward_with(module, frames: torch.Tensor, upstream: torch.Tensor, precision: str,
                  checkpointing: bool = False) -> dict:
    """The head's parameter gradients for a given dL/dprediction, forward under `precision`'s autocast."""
    module.model.head.gradient_checkpointing = checkpointing
    module.train()
    module.zero_grad(set_to_none=True)
    with strict_fp32(precision == "32-true"):
        with precision_context(precision, module.device):
            pred = module(frames)
        pred.backward(upstream)
    grads = _head_grads(module)
    module.zero_grad(set_to_none=True)
    return {"loss": float("nan"), "grads": grads}


def compare_grads(step: dict, ref: dict) -> dict:
    """Gradient agreement of two results holding "grads" (and "loss")."""
    names = sorted(ref["grads"])
    if sorted(step["grads"]) != names:
        raise ValueError("the two steps have gradients for different parameters")
    g = torch.cat([step["grads"][n].flatten().double() for n in names])
    r = torch.cat([ref["grads"][n].flatten().double() for n in names])
    return {
        "loss": step["loss"], "loss_ref": ref["loss"],
        "loss_rel": abs(step["loss"] - ref["loss"]) / max(abs(ref["loss"]), 1e-12),
        "grad_rel": float((g - r).norm() / r.norm().clamp_min(1e-30)),
        "grad_cos": float(torch.nn.functional.cosine_similarity(g, r, dim=0)),
        "grad_nonfinite": int((~torch.isfinite(g)).sum()),
        "params_with_grad": len(names),
    }


def train_failures(report: dict, tol: dict, keys=("loss_rel", "grad_rel", "grad_cos")) -> list[str]:
    bad = [f"{report['grad_nonfinite']} non-finite gradients"] if report.get("grad_nonfinite") else []
    for key in keys:
        if key not in tol or key not in report:
            continue
        ok = report[key] >= tol[key] if key == "grad_cos" else report[key] <= tol[key]
        if not ok:
            bad.append(f"{key} {report[key]:.6g} {'<' if key == 'grad_cos' else '>'} {tol[key]:g}")
    return bad


def train_precisions(module, batch: dict, precisions: Iterable[str] = ("bf16-mixed",)) -> dict:
    """Per precision (and "32-true" itself): the full step's loss vs fp32, the network backward for fp32's
    upstream gradient vs fp32, and the full step with gradient checkpointing on vs off."""
    video = batch["video"]
    upstream = upstream_gradient(module, video["frames"], video["disparity"], video["mask"])
    ref_step = train_step(module, batch, "32-true", checkpointing=False)
    ref_back = backward_with(module, video["frames"], upstream, "32-true")
    rows = {}
    for precision in dict.fromkeys(["32-true", *precisions]):
        off = ref_step if precision == "32-true" else train_step(module, batch, precision, checkpointing=False)
        on = train_step(module, batch, precision, checkpointing=True)
        back = ref_back if precision == "32-true" else backward_with(module, video["frames"], upstream, precision)
        loss = compare_grads(off, ref_step)
        network = compare_grads(back, ref_back)
        row = {"loss_rel": loss["loss_rel"], "loss": off["loss"], "loss_fp32": ref_step["loss"],
               "backward_vs_fp32": {k: network[k] for k in ("grad_rel", "grad_cos", "grad_nonfinite",
                                                          "params_with_grad")},
               "full_step_grad_cos_vs_fp32 (information)": loss["grad_cos"],
               "checkpointing_on_vs_off": compare_grads(on, off)}
        tol = TRAIN_TOLERANCES[precision]
        row["fails"] = (train_failures({"loss_rel": loss["loss_rel"]}, tol)
                        + train_failures(row["backward_vs_fp32"], tol)
                        + [f"checkpointing: {m}" for m in train_failures(row["checkpointing_on_vs_off"],
                                                                         CHECKPOINTING_TOLERANCE,
                                                                         ("loss_rel", "grad_rel"))])
        rows[precision] = row
    return rows


# --------------------------------------------------------------------------------------------- memory
def window_memory(model, device, precision: str, height: int = 518, width: int = 518, frames: int = 32) -> dict:
    """Peak GPU memory of one (1, frames, 3, height, width) window through the model (the published README's
    measurement): total peak allocated, of which the weights, and the peak reserved by the caching allocator."""
    device = torch.device(device)
    if device.type != "cuda":
        raise ValueError("window_memory reads the CUDA allocator's statistics; on the CPU use bench's subprocess run")
    model = model.to(device).eval()
    x = torch.randn(1, frames, 3, height, width, device=device)
    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    forward(model, x, device, precision)
    torch.cuda.synchronize(device)
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    return {"window": [1, frames, 3, height, width], "precision": precision,
            "peak_allocated_mib": torch.cuda.max_memory_allocated(device) / 2**20,
            "activations_mib": (torch.cuda.max_memory_allocated(device) - base) / 2**20,
            "weights_mib": weights / 2**20,
            "peak_reserved_mib": torch.cuda.max_memory_reserved(device) / 2**20}
