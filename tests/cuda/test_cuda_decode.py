"""JPEG frames decoded on the GPU (nvJPEG, `torchvision.io.decode_jpeg(device="cuda")`) by the same function the
CPU suite checks (data/device_decode.py, tests/test_data_device_decode.py): within one grey level of the workers'
OpenCV frames, padding and the other keys unchanged, and the DataModule's hook decodes before it augments."""
from __future__ import annotations

import torch

from vda_lightning.data.device_augment import DeviceAugmentation
from vda_lightning.data.device_decode import decode_deferred

from tests.helpers.jpeg_clips import stored_batches


def test_device_jpeg_decode_is_within_a_grey_level_of_the_cpu_frames(cuda):
    deferred, decoded = stored_batches()
    on_device = {k: v.to(cuda) if torch.is_tensor(v) else v for k, v in deferred.items()}  # bytes stay on the host
    out = decode_deferred(on_device, cuda)
    assert out["frames"].device.type == cuda.type and out["frames"].dtype == torch.uint8
    diff = (out["frames"].cpu().int() - decoded["frames"].int()).abs()
    print(f"nvJPEG vs OpenCV: max {int(diff.max())} grey levels, {float((diff > 0).float().mean()):.2%} of values")
    assert int(diff.max()) <= 1
    frames = out["frames"].cpu()
    assert not frames[1, :, :, 42:].any() and not frames[1, ..., 70:].any()  # the smaller clip's zero padding
    aug = DeviceAugmentation((28, 42)).to(cuda)
    a = aug(out)
    b = DeviceAugmentation((28, 42))(decode_deferred(deferred, "cpu"))
    assert (a["frames"].cpu() - b["frames"]).abs().max() <= 1.5 / 255
    assert torch.equal(a["mask"].cpu(), b["mask"])
