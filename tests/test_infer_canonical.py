"""A canonical-camera metric model (`ModelConfig.canonical_focal`) gives metres through one conversion
(`models.configs.canonical_depth_to_metres`): `infer_video(..., camera=)` returns what `vda infer` writes with the
same camera, by focal lengths or by intrinsics rescaled with the frames, and refuses to run without a camera as
the command does."""
from __future__ import annotations

import copy
import dataclasses

import cv2
import numpy as np
import pytest
import torch

import vda_lightning
from vda_lightning.inference.camera import CameraError
from vda_lightning.inference.cli import main
from vda_lightning.models.configs import canonical_depth_to_metres

FRAMES, H, W = 12, 28, 42
CANONICAL = 20.0


@pytest.fixture(scope="module")
def canonical(tiny_model, tmp_path_factory):
    """The tiny random model as a metric model for a canonical camera of 20 px, saved; the same weights without
    the canonical camera (its raw output); frames as an array and as a PNG folder (lossless: the same pixels)."""
    root = tmp_path_factory.mktemp("canonical")
    model = copy.deepcopy(tiny_model)
    model.config = dataclasses.replace(model.config, metric=True, canonical_focal=CANONICAL)
    plain = copy.deepcopy(tiny_model)
    plain.config = dataclasses.replace(plain.config, metric=True)
    frames = np.random.default_rng(3).integers(0, 256, (FRAMES, H, W, 3), dtype=np.uint8)
    folder = root / "clip"
    folder.mkdir()
    for i, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:04d}.png"), frame[..., ::-1])
    return {"model": model, "ckpt": vda_lightning.save_model(model, root / "canonical.safetensors"),
            "plain": plain, "frames": frames, "folder": folder, "root": root}


def cli_depths(canonical, tmp_path, *options) -> np.ndarray:
    out = tmp_path / "out"
    code = main([str(canonical["folder"]), "--checkpoint", str(canonical["ckpt"]), "--input-size", str(H),
                 "--device", "cpu", "--save", "npz", "--no-progress", "--output-dir", str(out), *map(str, options)])
    assert code == 0
    return np.load(out / "clip_depths.npz")["depths"]


def test_infer_video_with_a_camera_gives_the_metres_of_vda_infer(canonical, tmp_path):
    """The issue's must-show: focal lengths given to the API and to `--focal-length-x/-y` give the same maps, and
    those are the raw canonical output times fx / canonical_focal (not the raw output: the conversion ran)."""
    from_cli = cli_depths(canonical, tmp_path, "--focal-length-x", 50, "--focal-length-y", 40)
    from_api = vda_lightning.infer_video(canonical["model"], canonical["frames"], input_size=H, device="cpu",
                                         camera=(50, 40))
    np.testing.assert_array_equal(from_api, from_cli)
    raw = vda_lightning.infer_video(canonical["plain"], canonical["frames"], input_size=H, device="cpu")
    assert raw.std() > 0 and np.abs(raw - from_api).max() > 0.1 * np.abs(raw).max()
    np.testing.assert_allclose(from_api, raw * 2.5, rtol=1e-6)  # fx 50 / canonical 20; fy plays no part


def test_intrinsics_follow_the_frames_resize_as_with_vda_infer(canonical, tmp_path):
    """A K of the input at its own size (`--intrinsics`) is rescaled with max_res, through the API too: as a
    matrix or as the same file."""
    K = np.array([[60.0, 0, 21.0], [0, 55.0, 14.0], [0, 0, 1]])
    k_file = tmp_path / "K.txt"
    np.savetxt(k_file, K)
    from_cli = cli_depths(canonical, tmp_path, "--intrinsics", k_file, "--max-res", 32)
    assert from_cli.shape[1:] != (H, W)  # the frames were resized, so the camera was
    for model, camera in ((canonical["model"], K), (str(canonical["ckpt"]), k_file)):  # a model or its file
        from_api = vda_lightning.infer_video(model, canonical["folder"], input_size=H, device="cpu", max_res=32,
                                             camera=camera)
        np.testing.assert_array_equal(from_api, from_cli)


def test_without_a_camera_the_api_refuses_as_vda_infer_does(canonical, tmp_path, capsys):
    with pytest.raises(CameraError, match=r"canonical camera \(focal length 20 px\).*camera="):
        vda_lightning.infer_video(canonical["model"], canonical["frames"], input_size=H, device="cpu")
    code = main([str(canonical["folder"]), "--checkpoint", str(canonical["ckpt"]), "--input-size", str(H),
                 "--output-dir", str(tmp_path / "out")])
    assert code == 2 and "canonical camera (focal length 20 px)" in capsys.readouterr().err
    # a model without a canonical camera ignores the camera: the same maps with or without one
    plain = vda_lightning.infer_video(canonical["plain"], canonical["frames"][:4], input_size=H, device="cpu")
    np.testing.assert_array_equal(plain, vda_lightning.infer_video(canonical["plain"], canonical["frames"][:4],
                                                                   input_size=H, device="cpu", camera=50.0))


@pytest.mark.parametrize("camera, match", [((0, 40), "finite and positive"), (float("nan"), "finite and positive"),
                                           (np.zeros((2, 3)), "3x3 or 4x4"), ("not a camera", "not found"),
                                           ({"fx": 50}, "focal lengths")])
def test_a_bad_camera_is_one_line(canonical, camera, match):
    with pytest.raises(CameraError, match=match):
        vda_lightning.infer_video(canonical["model"], canonical["frames"][:2], input_size=H, camera=camera)


def test_one_conversion_for_numpy_and_torch_per_map_and_per_frame():
    """The same numbers bit for bit whether the depth is a numpy array (vda infer, vda eval, the API) or a tensor
    (training validation), fx a number or one per frame; None leaves the depth as it is."""
    from vda_lightning.training.metric import canonical_to_metric

    depth = np.random.default_rng(0).random((3, 5, 7), dtype=np.float32) * 10
    fx = np.array([470.4, 100.0, 33.3])
    per_frame = canonical_depth_to_metres(depth, fx, 518.7)
    assert per_frame.dtype == np.float32
    for i in range(3):
        np.testing.assert_array_equal(per_frame[i], canonical_depth_to_metres(depth[i], fx[i], 518.7))
        np.testing.assert_allclose(per_frame[i], depth[i] * fx[i] / 518.7, rtol=1e-6)
    tensor = canonical_depth_to_metres(torch.from_numpy(depth), torch.tensor(fx, dtype=torch.float32), 518.7)
    np.testing.assert_array_equal(tensor.numpy(), canonical_depth_to_metres(depth, fx.astype(np.float32), 518.7))
    assert canonical_depth_to_metres(depth, 50.0, None) is depth
    K = torch.zeros(3, 3, 3)
    K[:2, 0, 0] = torch.tensor([470.4, 100.0])  # the third sample has no intrinsics: it stays canonical
    out = canonical_to_metric(torch.from_numpy(depth), K, 518.7).numpy()
    np.testing.assert_array_equal(out[:2], canonical_depth_to_metres(depth[:2], K[:2, 0, 0], 518.7))
    np.testing.assert_array_equal(out[2], depth[2])
