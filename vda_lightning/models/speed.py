"""Speed levers for a `VideoDepthAnything`, each off by default and each measured (`vda bench infer --levers`,
`vda bench train --levers`, evaluation/results/): `torch.compile` of the encoder and the head, channels-last memory
format for the head's convolutions, and CUDA graphs for fixed-shape windows.

All three act on the two entry points the runners and the training module call, `model.forward_features` (the
encoder) and `model.forward_depth` (the head), by wrapping them on the instance: the module tree, its parameters
and its state-dict keys stay as they are, so checkpoints are unaffected and `unapply` restores the plain model.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from torch.utils import _pytree as pytree

from .levers import LEVERS, parse_levers  # noqa: F401 (torch-free, for the commands' option checks)


def set_channels_last(model: nn.Module, enabled: bool | None = True) -> None:
    """The head's convolution weights and its reassembled feature maps in channels-last (NHWC) layout: cuDNN's
    fast convolution kernels (tensor cores) work in NHWC, and the temporal modules' NCHW -> tokens permute becomes
    a view. Numerics: same operations, different summation order (~1e-6 relative in fp32). None: the head's
    default (`dpt.nhwc`: NHWC feature maps on the CPU, weights as loaded), False: NCHW everywhere."""
    head = model.head if hasattr(model, "head") else model.depth_head
    fmt = torch.channels_last if enabled else torch.contiguous_format
    for m in head.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            m.weight.data = m.weight.data.contiguous(memory_format=fmt)
    for m in head.modules():  # the head and its fusion blocks keep NHWC through their resizes
        if hasattr(m, "channels_last"):
            m.channels_last = enabled


class CUDAGraphed:
    """Replays a captured CUDA graph of `fn` for every new combination of input shapes, dtypes and non-tensor
    arguments (and autocast state); eager call when not on CUDA. Inputs are copied into the graph's static buffers
    and outputs cloned out of them, so callers may keep results across calls (the runner carries features from one
    window to the next). Pays where kernel launches dominate (small frames, small models); a window at 518² mostly
    does not launch-bound — `vda bench infer --levers cuda_graphs` says which."""

    def __init__(self, fn, warmup: int = 2):
        self.fn, self.warmup = fn, warmup
        self.graphs: dict = {}

    @staticmethod
    def _key(leaves) -> tuple:
        parts = [torch.is_autocast_enabled("cuda"), torch.get_autocast_dtype("cuda")]
        for x in leaves:
            parts.append((tuple(x.shape), x.dtype, str(x.device)) if isinstance(x, torch.Tensor) else x)
        return tuple(parts)

    def __call__(self, *args):
        leaves, spec = pytree.tree_flatten(args)
        tensors = [x for x in leaves if isinstance(x, torch.Tensor)]
        if not tensors or tensors[0].device.type != "cuda" or torch.is_grad_enabled():
            return self.fn(*args)
        key = (spec, self._key(leaves))
        entry = self.graphs.get(key)
        if entry is None:
            entry = self.graphs[key] = self._capture(leaves, spec)
        graph, static_in, static_out = entry
        for dst, src in zip(static_in, leaves):
            if isinstance(dst, torch.Tensor):
                dst.copy_(src)
        graph.replay()
        return pytree.tree_map(lambda t: t.clone() if isinstance(t, torch.Tensor) else t, static_out)

    def _capture(self, leaves, spec):
        static_in = [x.clone() if isinstance(x, torch.Tensor) else x for x in leaves]
        args = pytree.tree_unflatten(static_in, spec)
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(self.warmup):
                self.fn(*args)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = self.fn(*args)
        return graph, static_in, static_out


def apply_levers(model: nn.Module, levers, compile_mode: str | None = None,
                 compile_backend: str = "inductor") -> nn.Module:
    """Turn the given levers on (in place; returns the model). compile and cuda_graphs together: the compiled
    functions are captured (compile_mode "reduce-overhead" is torch.compile's own graph capture instead).
    `compile_backend` "eager" traces with dynamo but generates no code (the tests' cheap check of the wiring)."""
    levers = parse_levers(levers)
    unapply(model)
    if "channels_last" in levers:
        set_channels_last(model, True)
    plain = {"forward_features": model.forward_features, "forward_depth": model.forward_depth}
    model._plain_entry_points = plain
    for name, fn in plain.items():
        if "compile" in levers:
            fn = torch.compile(fn, mode=compile_mode, dynamic=False, backend=compile_backend)
        if "cuda_graphs" in levers:
            fn = CUDAGraphed(fn)
        if fn is not plain[name]:
            setattr(model, name, fn)
    model.speed_levers = levers
    return model


def unapply(model: nn.Module) -> nn.Module:
    """Back to the plain model (entry points and memory format)."""
    for name in getattr(model, "_plain_entry_points", {}):
        model.__dict__.pop(name, None)
    model.__dict__.pop("_plain_entry_points", None)
    if getattr(getattr(model, "head", None), "channels_last", None) is not None:
        set_channels_last(model, None)
    model.speed_levers = []
    return model
