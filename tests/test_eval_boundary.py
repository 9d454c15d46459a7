"""Boundary sharpness (`evaluation/boundary.py`) against Depth Pro's published `SI_boundary_F1`.

The fixture tests/fixtures/depth_pro_boundary_f1.json holds the published function's outputs on `built_cases()`;
it was written once, outside this repository, with apple/ml-depth-pro at commit 9efe5c1 (src/depth_pro/eval/
boundary_metrics.py, loaded by path so its package's model imports do not run):

    cd /work/main && .venv/bin/python /tmp/depth_pro_boundary_fixture.py \
        /work/.mirror/apple+ml-depth-pro/repo > tests/fixtures/depth_pro_boundary_f1.json

where /tmp/depth_pro_boundary_fixture.py is:

    import importlib.util, json, subprocess, sys, tempfile, pathlib
    src = subprocess.run(["git", "-C", sys.argv[1], "show", "HEAD:src/depth_pro/eval/boundary_metrics.py"],
                         capture_output=True, text=True, check=True).stdout
    path = pathlib.Path(tempfile.mkdtemp()) / "boundary_metrics.py"; path.write_text(src)
    spec = importlib.util.spec_from_file_location("bm", path); bm = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bm); sys.path.insert(0, "tests")
    from test_eval_boundary import built_cases
    t = bm.get_thresholds_and_weights(1.05, 1.25, 10)[0]
    print(json.dumps({name: {"si_boundary_f1": float(bm.SI_boundary_F1(p, g)),
                             "f1_per_threshold": [float(bm.boundary_f1(bm.invert_depth(p), bm.invert_depth(g), x))
                                                  for x in t]}
                      for name, (p, g) in built_cases().items()}, indent=1))
"""
import json
from pathlib import Path

import numpy as np
import pytest

from vda_lightning.evaluation.boundary import boundary_f1_per_threshold, sequence_boundary_f1, si_boundary_f1

FIXTURE = Path(__file__).parent / "fixtures" / "depth_pro_boundary_f1.json"
TOL = 1e-12  # the brief's bar is 1e-5; the same float64 comparisons give the same counts


def _blocks(rng, shape, cells):
    """Piecewise-constant depth: a coarse random grid upsampled, so edges are long and axis-aligned."""
    coarse = rng.uniform(1.0, 10.0, size=cells)
    return np.kron(coarse, np.ones((shape[0] // cells[0], shape[1] // cells[1])))


def built_cases() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(predicted depth, GT depth) float64 pairs, seeded: exact edges, noisy edges, blur, shifts, none, holes."""
    rng = np.random.default_rng(27)
    gt = _blocks(rng, (24, 32), (4, 4))
    yy, xx = np.mgrid[0:24, 0:32]
    smooth = 2.0 + 0.05 * xx + 0.03 * yy
    square = np.where((abs(yy - 12) < 6) & (abs(xx - 16) < 7), 1.0, smooth)
    blurred = gt.copy()
    for _ in range(2):  # a box blur: edges spread over a few pixels and weaken
        blurred = (blurred + np.roll(blurred, 1, 0) + np.roll(blurred, 1, 1) + np.roll(blurred, -1, 1)) / 4
    return {
        "scaled_exact": (3.7 * gt, gt),
        "noisy": (gt * rng.lognormal(0.0, 0.04, gt.shape), gt),
        "blurred": (blurred, gt),
        "shifted_square": (np.roll(square, 2, axis=1), square),
        "flat_prediction": (np.full((24, 32), 4.0), square),
        "random_fields": (rng.uniform(0.5, 20.0, (20, 28)), rng.uniform(0.5, 20.0, (20, 28))),
        "zeros_in_gt": (gt + 0.5, np.where(rng.random(gt.shape) < 0.1, 0.0, gt)),
    }


@pytest.fixture(scope="module")
def published():
    return json.loads(FIXTURE.read_text())


def test_matches_depth_pro_on_built_cases(published):
    cases = built_cases()
    assert set(published) == set(cases)
    thresholds = np.linspace(1.05, 1.25, 10)
    for name, (pred, gt) in cases.items():
        assert si_boundary_f1(pred, gt) == pytest.approx(published[name]["si_boundary_f1"], abs=TOL), name
        np.testing.assert_allclose(boundary_f1_per_threshold(pred, gt, thresholds),
                                   published[name]["f1_per_threshold"], atol=TOL, err_msg=name)
    # the cases span the range: perfect, partial and no agreement
    scores = {name: r["si_boundary_f1"] for name, r in published.items()}
    assert scores["scaled_exact"] == 1.0 and scores["flat_prediction"] == 0.0
    assert 0.0 < scores["blurred"] < scores["noisy"] < 1.0


def test_valid_mask_drops_pairs_touching_holes():
    _, gt = built_cases()["scaled_exact"]
    holes = gt.copy()
    holes[:, 10:14] = -1.0  # missing GT: without the mask its inverse (1e6) would draw false edges
    valid = holes > 0
    assert si_boundary_f1(gt * 2.0, holes) < 1.0
    assert si_boundary_f1(gt * 2.0, holes, valid) == 1.0
    assert si_boundary_f1(gt, gt, np.ones_like(valid)) == si_boundary_f1(gt, gt)
    # a sequence: frames without a valid pixel are left out of its mean
    seq_valid = np.stack([valid, np.zeros_like(valid)])
    assert sequence_boundary_f1(np.stack([gt, gt * 0 + 1]), np.stack([holes, holes]), seq_valid) == 1.0
