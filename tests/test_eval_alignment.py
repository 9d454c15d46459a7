"""Metric evaluation: `vda-eval --alignment {scale_shift, scale, none}` and `--prediction-kind`.

On the mini benchmark, predictions that are the ground-truth depth times 1.1 score AbsRel 0.1 and δ1 1.0 without
alignment (every benchmark's crop and cap, no upper clip of the prediction), AbsRel 0 with one median scale per
sequence, and the relative protocol's numbers when the same depth is given to `scale_shift` as depth.
"""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from vda_lightning.evaluation.cli import main
from vda_lightning.evaluation.functional import align_to_ground_truth, sequence_depth_metrics
from vda_lightning.evaluation.metrics import TAEMetric
from vda_lightning.evaluation.report import markdown_table
from vda_lightning.io.benchmarks import get_benchmark

DATASETS = ("kitti", "bonn", "scannet")


@pytest.fixture(scope="module")
def scaled_gt(golden_dir, tmp_path_factory):
    """<dir>/<dataset>/<image>.npy = 1.1 x the frame's ground-truth depth (GT crop applied, zeros kept)."""
    root = golden_dir / "mini_benchmark" / "benchmark"
    out = tmp_path_factory.mktemp("gt_x1.1")
    for name in DATASETS:
        spec = get_benchmark(name)
        doc = json.loads((root / name / spec.json_name).read_text())
        for item in doc[name]:
            for frames in item.values():
                for f in frames:
                    gt = cv2.imread(str(root / name / f["gt_depth"]), cv2.IMREAD_UNCHANGED) / f["factor"]
                    path = (out / name / f["image"]).with_suffix(".npy")
                    path.parent.mkdir(parents=True, exist_ok=True)
                    np.save(path, (1.1 * gt[spec.crop_slices()]).astype(np.float32))
    return root, out


def _eval(root, preds, out, *extra):
    code = main(["--predictions", str(preds), "--benchmark-root", str(root), "--benchmark", ",".join(DATASETS),
                 "--output", str(out), "--no-progress", *extra])
    assert code == 0
    return json.loads(out.read_text())


def test_no_alignment_scores_metres_as_predicted(scaled_gt, tmp_path):
    root, preds = scaled_gt
    res = _eval(root, preds, tmp_path / "none.json", "--alignment", "none")
    for name in DATASETS:
        d = res["depth"][name]
        # Bonn/ScanNet GT reaches 9.999 m under a 10 m cap: 1.1 x GT is beyond the cap there and must not be clipped
        assert d["abs_relative_difference"] == pytest.approx(0.1, abs=1e-6), name
        assert d["delta1_acc"] == 1.0, name
        for a, _, delta in d["per_scene"]:
            assert a == pytest.approx(0.1, abs=1e-6) and delta == 1.0
        assert d["settings"]["alignment"] == "none" and d["settings"]["prediction_kind"] == "depth"
    assert res["alignment"] == "none" and res["meta"]["alignment"] == "none"
    assert "[alignment: none]" in (tmp_path / "none.md").read_text()


def test_median_scale_removes_a_constant_factor(scaled_gt, tmp_path):
    root, preds = scaled_gt
    res = _eval(root, preds, tmp_path / "scale.json", "--alignment", "scale")
    for name in DATASETS:
        assert res["depth"][name]["abs_relative_difference"] == pytest.approx(0.0, abs=1e-6), name
        assert res["depth"][name]["rmse_linear"] == pytest.approx(0.0, abs=1e-5), name
        assert res["depth"][name]["delta1_acc"] == 1.0
    # depth given to the relative protocol is inverted first: 1/(1.1 gt) is an exact disparity up to scale
    res = _eval(root, preds, tmp_path / "ss.json", "--prediction-kind", "depth")
    assert res["alignment"] == "scale_shift" and res["prediction_kind"] == "depth"
    for name in DATASETS:
        assert res["depth"][name]["abs_relative_difference"] == pytest.approx(0.0, abs=1e-5), name


def test_disparity_predictions_under_no_alignment_are_inverted(scaled_gt, tmp_path):
    root, preds = scaled_gt
    disp = tmp_path / "disp"
    for path in preds.rglob("*.npy"):
        target = disp / path.relative_to(preds)
        target.parent.mkdir(parents=True, exist_ok=True)
        np.save(target, (1.0 / np.maximum(np.load(path), 1e-3)).astype(np.float32))
    res = _eval(root, disp, tmp_path / "d.json", "--alignment", "none", "--prediction-kind", "disparity")
    for name in DATASETS:
        assert res["depth"][name]["abs_relative_difference"] == pytest.approx(0.1, abs=1e-5), name


def test_functional_by_hand():
    gt = torch.tensor([[[2.0, 4.0, 0.0, 12.0]]], dtype=torch.float64)  # 0: missing; 12 > cap 10: not scored
    pred = torch.tensor([[[1.0, 6.0, 5.0, -3.0]]])
    depth, mask = align_to_ground_truth(pred, gt, 10.0, alignment="none")
    assert mask.tolist() == [[[True, True, False, False]]]
    assert depth.tolist() == [[[1.0, 6.0, 5.0, 1e-3]]]  # as predicted, floored at 1e-3, no upper clip
    s = sequence_depth_metrics(pred, gt, 10.0, alignment="none")
    assert s["abs_rel"] == pytest.approx((0.5 + 0.5) / 2) and s["delta1"] == 0.0
    # median of gt/pred over valid pixels (lower median of {2, 2/3}) = 2/3 -> depth (2/3, 4): AbsRel (2/3 + 0)/2
    s = sequence_depth_metrics(pred, gt, 10.0, alignment="scale")
    assert s["abs_rel"] == pytest.approx((1 - 1 / 3 + 0) / 2) and s["delta1"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="alignment"):
        sequence_depth_metrics(pred, gt, 10.0, alignment="affine")


def test_tae_without_alignment_takes_depth_as_it_is():
    rng = torch.Generator().manual_seed(0)
    depth = 1.0 + torch.rand(3, 6, 8, generator=rng, dtype=torch.float64)
    K = torch.tensor([[5.0, 0, 4], [0, 5.0, 3], [0, 0, 1]], dtype=torch.float64)
    poses = torch.eye(4, dtype=torch.float64).repeat(3, 1, 1)
    for i, angle in enumerate((0.0, 0.03, 0.07)):  # rotations only: reprojection is then free of the depth scale
        c, s = np.cos(angle), np.sin(angle)
        poses[i, 0, 0], poses[i, 0, 2], poses[i, 2, 0], poses[i, 2, 2] = c, s, -s, c
    plain, unaligned = TAEMetric(10.0), TAEMetric(10.0, alignment="none")
    plain.update(depth, K, poses)                        # already depth: no GT, no fit
    unaligned.update(depth, K, poses, gt_depth=depth * 3)  # a GT 3x away changes nothing without alignment
    assert float(unaligned.compute()) == pytest.approx(float(plain.compute()), rel=1e-12)
    aligned = TAEMetric(10.0, alignment="scale")
    aligned.update(depth, K, poses, gt_depth=depth * 3)  # one scale (3) for the sequence
    assert float(aligned.compute()) == pytest.approx(float(plain.compute()), rel=1e-9)


def test_table_header_shows_the_alignment():
    row = {"depth": {"kitti": {"abs_relative_difference": 0.1, "delta1_acc": 0.9}}}
    assert markdown_table({"a": row}).startswith("| method [alignment: scale_shift] |")  # older files: published
    table = markdown_table({"a": {**row, "alignment": "none"}, "b": {**row, "alignment": "scale"}})
    assert table.startswith("| method | alignment |") and "| a | none |" in table and "| b | scale |" in table


def test_checkpoint_kind_and_canonical_camera_in_vda_eval(golden_dir, tmp_path, caplog):
    import dataclasses
    import logging

    from vda_lightning import save_model
    from vda_lightning.models import build_video_model

    torch.manual_seed(0)
    model = build_video_model("vitt", metric=True).eval()
    plain = save_model(model, tmp_path / "metric.safetensors")
    model.config = dataclasses.replace(model.config, canonical_focal=100.0)
    canonical = save_model(model, tmp_path / "canonical.safetensors")
    root = golden_dir / "mini_benchmark" / "benchmark"
    common = ["--benchmark-root", str(root), "--alignment", "none", "--input-size", "28", "--device", "cpu",
              "--no-progress"]
    with caplog.at_level(logging.INFO, logger="vda_lightning.evaluation"):
        assert main(["--checkpoint", str(plain), "--benchmark", "scannet", "--save-predictions", str(tmp_path / "a"),
                     "--output", str(tmp_path / "a.json"), *common]) == 0
    assert "metric depth model (from the file's metadata)" in caplog.text
    assert json.loads((tmp_path / "a.json").read_text())["prediction_kind"] == "depth"  # what a metric model gives
    assert main(["--checkpoint", str(canonical), "--benchmark", "scannet", "--save-predictions",
                 str(tmp_path / "b"), "--output", str(tmp_path / "b.json"), *common]) == 0
    doc = json.loads((root / "scannet" / "scannet_video.json").read_text())
    first = next(iter(doc["scannet"][0].values()))[0]
    rel = first["image"].replace(".png", ".npy").replace(".jpg", ".npy")
    a, b = np.load(tmp_path / "a" / "scannet" / rel), np.load(tmp_path / "b" / "scannet" / rel)
    np.testing.assert_allclose(b, a * first["K"][0][0] / 100.0, rtol=1e-5, atol=1e-7)  # metres for fx of that K
    assert main(["--checkpoint", str(canonical), "--benchmark", "kitti", "--output", str(tmp_path / "c.json"),
                 *common]) == 2  # KITTI's JSON has no K: one error line, exit 2
