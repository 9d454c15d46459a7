"""The model's input contract: the published resize rule, normalisation, and the pseudo-labeller reproducing the
published Depth Anything V2 image inference (`depth_anything_v2/dpt.py::infer_image` + `util/transform.py`)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from vda_lightning.models import get_config
from vda_lightning.models.input_contract import DEFAULT_CONTRACT, IMAGENET_MEAN, IMAGENET_STD

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]  # as the published NormalizeImage is called


def published_lower_bound(height: int, width: int, size: int) -> tuple[int, int]:
    """An independent statement of the published `Resize.get_size` (keep_aspect_ratio, lower_bound, multiple 14)."""
    scale_h, scale_w = size / height, size / width
    if scale_w > scale_h:
        scale_h = scale_w
    else:
        scale_w = scale_h

    def constrain(x):
        y = (np.round(x / 14) * 14).astype(int)
        return (np.ceil(x / 14) * 14).astype(int) if y < size else y

    return int(constrain(scale_h * height)), int(constrain(scale_w * width))


def published_infer_image(model, rgb: np.ndarray, input_size: int) -> np.ndarray:
    """The published `infer_image` on one frame (it takes BGR; ours are RGB), with OpenCV and numpy."""
    h, w = rgb.shape[:2]
    image = cv2.cvtColor(np.ascontiguousarray(rgb[..., ::-1]), cv2.COLOR_BGR2RGB) / 255.0  # float64
    new_h, new_w = published_lower_bound(h, w, input_size)
    image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_CUBIC)
    image = (image - MEAN) / STD
    x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)).astype(np.float32))[None]
    with torch.no_grad():
        depth = model(x)
    return F.interpolate(depth[:, None], (h, w), mode="bilinear", align_corners=True)[0, 0].numpy()


def test_resize_rule_equals_published_statement_on_non_square_frames():
    sizes = [(45, 80), (80, 45), (150, 100), (374, 1242), (436, 1024), (480, 640), (720, 1280), (517, 519),
             (1080, 1920), (33, 500), (518, 518), (97, 131)]
    for h, w in sizes:
        for size in (70, 126, 500, 510, 518):
            assert DEFAULT_CONTRACT.network_size(h, w, size) == published_lower_bound(h, w, size), (h, w, size)
    # half-way cases round to even, as numpy does: 105 / 14 = 7.5 -> 8 patches (112), 75 / 14 = 5.36 -> 6 (ceil)
    assert DEFAULT_CONTRACT.network_size(150, 100, 70) == (112, 70)
    # the video aspect rule comes first only where published (video_depth.py), e.g. KITTI 374x1242 -> 280
    assert DEFAULT_CONTRACT.network_size(374, 1242, 518, video=True) == (280, 924)
    assert DEFAULT_CONTRACT.network_size(374, 1242, 518) == (518, 1722)


def test_contract_on_the_config_as_a_plain_dict():
    contract = get_config("vits").input_contract()
    d = json.loads(json.dumps(contract.to_dict()))
    assert d["patch_size"] == 14 and d["mean"] == MEAN and d["std"] == STD and d["input_size"] == 518
    assert d["resize_method"] == "lower_bound" and d["interpolation"] == "bicubic" and d["max_aspect"] == 1.78
    assert contract.check_size((28, 42)) == (28, 42)
    with pytest.raises(ValueError, match=r"crop size \[30, 42\] must be positive multiples of 14"):
        contract.check_size([30, 42], "crop size")
    x = torch.rand(2, 3, 4, 5)
    mean, std = (torch.tensor(v, dtype=torch.float64)[:, None, None] for v in (MEAN, STD))
    ref = (x.double() - mean) / std
    out = contract.normalize(x, compute_dtype=torch.float64)
    assert out.dtype == torch.float32 and torch.equal(out, ref.float())


@pytest.fixture(scope="module")
def golden_teacher(golden_image_state_dict, tmp_path_factory):
    """The golden image weights as a DAv2 checkpoint file, loaded the way vda-pseudolabel loads its teacher."""
    from vda_lightning.training.teacher import Teacher

    path = tmp_path_factory.mktemp("teacher") / "depth_anything_v2_vits.pth"
    torch.save(golden_image_state_dict, path)
    return Teacher("vits", str(path))


@pytest.mark.parametrize("case", ["a", "b"])
def test_pseudolabel_path_reproduces_golden_dav2_image_cases(golden_dir, golden_teacher, case):
    cases = load_file(str(golden_dir / "dav2_image_cases.safetensors"))
    x, ref = cases[f"{case}.input"], cases[f"{case}.output"]
    # the golden inputs are normalised network inputs: undo the normalisation to get the float64 images they came
    # from; at input_size = their short side the published transform keeps their size (a multiple of 14)
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float64)[:, None, None]
    std = torch.tensor(IMAGENET_STD, dtype=torch.float64)[:, None, None]
    images = (x.double() * std + mean).permute(0, 2, 3, 1).numpy()  # (N, H, W, 3) float64
    out = golden_teacher.infer_image(images, input_size=min(x.shape[-2:]))
    assert out.shape == ref.shape
    assert ((out - ref).abs().max() / ref.abs().max()).item() < 1e-4  # measured ~2e-6 (the model's parity)


def test_pseudolabels_equal_published_infer_image_on_non_square_frames(golden_teacher):
    from vda_lightning.training.pseudolabel import label_frames

    rng = np.random.default_rng(0)
    for h, w, size in ((45, 80, 70), (150, 100, 70)):  # up- and down-scaling; 150x100 hits a half-way rounding
        frames = rng.integers(0, 256, (2, h, w, 3), dtype=np.uint8)
        ours = label_frames(golden_teacher, frames, size, "cpu").numpy()
        ref = np.stack([published_infer_image(golden_teacher.model, f, size) for f in frames])
        assert ours.shape == ref.shape == (2, h, w)
        assert np.abs(ours - ref).max() <= 1e-5 * np.abs(ref).max()  # batched float32 arithmetic: ~2e-6 measured
        assert np.array_equal(label_frames(golden_teacher, frames[:1], size, "cpu").numpy()[0], ref[0])  # bitwise


def test_mean_std_and_the_multiple_of_14_rule_are_defined_once():
    package = Path(__file__).resolve().parents[1] / "vda_lightning"
    mean_std = re.compile(r"0\.485|0\.229")
    # a patch size of 14 written down, or a side rounded / checked against 14 or a PATCH constant
    multiple = re.compile(r"[%/*]\s*14\b|\b14\s*[*%]|PATCH\w*\s*=\s*14\b|(round|ceil|floor)\([^)]*/\s*PATCH|%\s*PATCH")
    found = {"mean/std": set(), "multiple of 14": set()}
    for path in package.rglob("*.py"):
        code = "\n".join(line.split("#")[0] for line in path.read_text().splitlines())  # comments do not count
        if mean_std.search(code):
            found["mean/std"].add(path.relative_to(package).as_posix())
        if multiple.search(code):
            found["multiple of 14"].add(path.relative_to(package).as_posix())
    assert found == {"mean/std": {"models/input_contract.py"}, "multiple of 14": {"models/input_contract.py"}}
