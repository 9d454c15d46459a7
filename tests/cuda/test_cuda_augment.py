"""`augment_on: device` on the GPU: kornia's pass over a stored batch on CUDA gives the CPU run of the same device
path (frames to float32 rounding, targets and geometry exactly), the batch copied with pinned, non-blocking
transfers as the loader hands it over."""
from __future__ import annotations

import numpy as np
import torch

from vda_lightning.data.device_augment import DeviceAugmentation
from vda_lightning.data.format import ClipRecord
from vda_lightning.data.transforms import AugmentConfig, augment, collate, to_tensors
from vda_lightning.scenes import render_clip


def _stored_batch() -> dict:
    rng, samples = np.random.default_rng(0), []
    for seed, (h, w) in enumerate([(120, 160), (96, 128)]):
        c = render_clip([seed], 8, h, w)
        rec = ClipRecord(c["frames"], "synthetic", f"s{seed}", list(range(8)), depth=c["depth"].astype(np.float32),
                         mask=c["mask"], K=c["K"], poses=c["poses"])
        samples.append(augment(to_tensors(rec, 1e-3, 0.0), rng, AugmentConfig(), (70, 98), on_device=True))
    return collate(samples)


def test_device_augmentation_on_cuda_equals_its_cpu_run(cuda):
    stored = _stored_batch()
    ref = DeviceAugmentation((70, 98))(stored)
    on_gpu = {k: v.pin_memory().to(cuda, non_blocking=True) if torch.is_tensor(v) and cuda.type == "cuda"
              else v.to(cuda) if torch.is_tensor(v) else v for k, v in stored.items()}
    out = DeviceAugmentation((70, 98)).to(cuda)(on_gpu)
    assert out["frames"].device.type == cuda.type and out["frames"].shape == (2, 8, 3, 70, 98)
    assert (out["frames"].cpu() - ref["frames"]).abs().max() < 1e-5
    for k in ("disparity", "depth", "mask", "poses"):
        assert torch.equal(out[k].cpu(), ref[k]), k
    assert torch.allclose(out["K"].cpu(), ref["K"], rtol=1e-6, atol=1e-5)
