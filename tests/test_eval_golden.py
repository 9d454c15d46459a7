"""Parity with the published evaluation on ../shared/golden/mini_benchmark (expected.json)."""
import json

import pytest

from vda_lightning.evaluation.cli import main

REL = 1e-6
KEYS = ("abs_relative_difference", "rmse_linear", "delta1_acc")


@pytest.fixture(scope="module")
def mini_results(golden_dir, tmp_path_factory):
    mini = golden_dir / "mini_benchmark"
    out = tmp_path_factory.mktemp("eval") / "results.json"
    code = main(["--predictions", str(mini / "predictions"), "--benchmark-root", str(mini / "benchmark"),
                 "--benchmark", "kitti,bonn,scannet", "--tae", "--output", str(out), "--no-progress"])
    assert code == 0
    return json.loads(out.read_text()), json.loads((mini / "expected.json").read_text()), out


def test_depth_metrics_match_published(mini_results):
    got, expected, _ = mini_results
    for name, exp in expected["depth"].items():
        res = got["depth"][name]
        for key in KEYS:
            assert res[key] == pytest.approx(exp[key], rel=REL), (name, key)
        assert len(res["per_scene"]) == len(exp["per_scene"])
        for scene, scene_exp in zip(res["per_scene"], exp["per_scene"]):
            assert scene == pytest.approx(scene_exp, rel=REL), name
        assert res["missing_predictions"] == {}


def test_scannet_tae_matches_published(mini_results):
    got, expected, _ = mini_results
    assert got["tae"]["scannet"]["mean"] == pytest.approx(expected["tae"]["scannet"]["mean"], rel=REL)
    assert got["tae"]["scannet"]["per_scene"] == pytest.approx(expected["tae"]["scannet"]["per_scene"], rel=REL)


def test_outputs_written(mini_results, capsys):
    got, _, out = mini_results
    csv_rows = out.with_suffix(".csv").read_text().splitlines()
    assert csv_rows[0].startswith("benchmark,scene,abs_rel") and len(csv_rows) == 1 + 3 * 3 + 3
    md = out.with_suffix(".md").read_text()
    assert "| KITTI AbsRel↓ | KITTI δ1↑ |" in md and f"{got['tae']['scannet']['mean']:.3f}" in md
    # --compare: the paper-shaped table with δ1 rank over two result files, rows named by their stored labels
    worse = json.loads(out.read_text())
    worse["meta"]["label"] = "worse"
    for res in worse["depth"].values():
        res["delta1_acc"] -= 0.1
    worse_path = out.with_name("worse.json")
    worse_path.write_text(json.dumps(worse))
    assert main(["--compare", str(out), str(worse_path)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].endswith("| δ1 rank↓ |")
    assert table[2].startswith("| predictions |") and table[2].endswith("| 1.00 |")
    assert table[3].startswith("| worse |") and table[3].endswith("| 2.00 |")
