"""`vda eval --predictions DIR` scores anyone's saved predictions: per-frame .npy/.npz/.png16/.exr in our layout, one
.npz per sequence, or the CUT3R family's `<sequence>_02/frame_0000.npy` folders, depth or disparity, any resolution;
every layout gives the numbers the per-frame .npy gives (integer-valued predictions, so every format holds them
exactly), under both protocols."""
import json
import shutil

import cv2
import numpy as np
import pytest

from vda_lightning.evaluation.cli import main

from tests.fakes.benchmark import make_tiny_benchmark
from tests.fakes.cut3r_benchmark import build_cases, write_benchmark


@pytest.fixture(scope="module")
def kitti_cut3r(tmp_path_factory):
    """The cut3r KITTI split (two drives, three frames) with integer-valued depth predictions as .npy."""
    root = tmp_path_factory.mktemp("any")
    cases = {"kitti": build_cases(5)["kitti"]}
    for case in cases["kitti"]:
        case["pred"] = np.round(case["pred"] * 100).astype(np.float32)  # exact in a 16-bit PNG
    write_benchmark(root / "bench", root / "npy", cases)
    return root, cases["kitti"]


def _score(bench, preds, *extra, protocol="cut3r", benchmark="kitti"):
    out = preds.parent / f"{preds.name}.json"
    code = main(["--protocol", protocol, "--benchmark", benchmark, "--benchmark-root", str(bench),
                 "--predictions", str(preds), "--output", str(out), "--no-progress", *extra])
    assert code == 0
    return json.loads(out.read_text())


def _write_layout(root, cases, layout):
    preds = root / layout
    shutil.rmtree(preds, ignore_errors=True)
    for case in cases:
        for t, frame in enumerate(case["pred"]):
            ours = preds / "kitti" / case["name"] / "rgb" / f"frame_{t + 1:04d}"
            ours.parent.mkdir(parents=True, exist_ok=True)
            if layout == "npz":
                np.savez(ours.with_suffix(".npz"), depth=frame)
            elif layout == "png16":
                cv2.imwrite(str(ours.with_suffix(".png")), frame.astype(np.uint16))
            elif layout == "exr":
                import OpenEXR

                OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage},
                             {"Z": frame}).write(str(ours.with_suffix(".exr")))
            elif layout == "family":  # CUT3R's eval writes <output>/<drive>_02/frame_0000.npy
                family = preds / f"{case['name']}_02" / f"frame_{t:04d}.npy"
                family.parent.mkdir(parents=True, exist_ok=True)
                np.save(family, frame)
            elif layout == "disparity":
                np.save(ours.with_suffix(".npy"), 1.0 / frame)
        if layout == "sequence_npz":
            (preds / "kitti").mkdir(parents=True, exist_ok=True)
            np.savez(preds / "kitti" / f"{case['name']}.npz", pred=case["pred"])
    return preds


@pytest.mark.parametrize("layout", ["npz", "png16", "exr", "sequence_npz", "family", "disparity"])
def test_every_layout_scores_like_per_frame_npy(kitti_cut3r, layout):
    root, cases = kitti_cut3r
    expected = _score(root / "bench", root / "npy")["depth"]["kitti"]
    kind = ["--prediction-kind", "disparity"] if layout == "disparity" else []
    got = _score(root / "bench", _write_layout(root, cases, layout), *kind)
    assert got["prediction_kind"] == ("disparity" if layout == "disparity" else "depth")
    assert got["depth"]["kitti"]["valid_pixels"] == expected["valid_pixels"]
    exact = layout != "disparity"  # 1 / (1 / d) in float32 is d to an ulp
    for mine, reference in zip(got["depth"]["kitti"]["per_scene_metrics"], expected["per_scene_metrics"]):
        for key in ("abs_rel", "delta1", "rmse"):
            assert mine[key] == (reference[key] if exact else pytest.approx(reference[key], rel=1e-5)), (layout, key)


def test_a_family_folder_with_the_wrong_frame_count_is_one_line(kitti_cut3r, capsys):
    root, cases = kitti_cut3r
    preds = _write_layout(root, cases, "family")
    next((preds / f"{cases[0]['name']}_02").iterdir()).unlink()
    code = main(["--protocol", "cut3r", "--benchmark", "kitti", "--benchmark-root", str(root / "bench"),
                 "--predictions", str(preds), "--output", str(root / "bad.json"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "2 prediction files for the 3 frames" in err[0]


def test_the_vda_protocol_reads_a_sequence_npz_too(tmp_path):
    make_tiny_benchmark(tmp_path, "kitti", sequences=2, frames=4, height=12, width=16)
    per_frame = _score(tmp_path / "benchmark", tmp_path / "predictions", protocol="vda")
    stacked = tmp_path / "stacked"
    for seq in sorted((tmp_path / "predictions" / "kitti").iterdir()):
        (stacked / "kitti").mkdir(parents=True, exist_ok=True)
        frames = sorted((seq / "rgb").glob("*.npy"))
        np.savez(stacked / "kitti" / f"{seq.name}.npz", np.stack([np.load(f) for f in frames]))
    got = _score(tmp_path / "benchmark", stacked, protocol="vda")
    assert got["protocol"] == "vda" and got["alignment"] == "scale_shift"
    assert got["depth"]["kitti"]["per_scene"] == per_frame["depth"]["kitti"]["per_scene"]
