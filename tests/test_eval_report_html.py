"""`vda eval --metrics +boundary_f1,+drift --report DIR` (and `--compare ... --report`) on a tiny benchmark, and the
page checked in a real headless browser (Chromium: a screenshot that is not blank, the DOM's tables and images).

The browser test skips, saying why, when no Chromium is installed (CI installs the system package: .ci/run).
"""
import json
import shutil
import subprocess

import cv2
import numpy as np
import pytest

from vda_lightning.dashboards.html_report import write_report
from vda_lightning.evaluation.cli import main

from tests.fakes.benchmark import make_tiny_benchmark

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    """One scored run with every optional metric and the TAE, and its report."""
    root = tmp_path_factory.mktemp("report")
    make_tiny_benchmark(root, "scannet", sequences=2, frames=13, height=40, width=48, with_pose=True, seed=4)
    out = root / "results.json"
    code = main(["--predictions", str(root / "predictions"), "--benchmark-root", str(root / "benchmark"),
                 "--benchmark", "scannet", "--tae", "--metrics", "+boundary_f1,+drift", "--output", str(out),
                 "--report", str(root / "report"), "--no-progress"])
    assert code == 0
    return root, json.loads(out.read_text())


def test_extras_sit_beside_the_published_numbers(reported):
    root, results = reported
    scannet = results["depth"]["scannet"]
    extra, per_scene = scannet["extra"], scannet["extra_per_scene"]
    assert set(extra) == {"boundary_f1", "abs_rel_sequence_aligned", "abs_rel_frame_aligned",
                          "abs_rel_first_quarter", "abs_rel_last_quarter"}
    # the drift view's sequence-aligned AbsRel is the published AbsRel of each sequence, to the last bit
    assert per_scene["abs_rel_sequence_aligned"] == [row[0] for row in scannet["per_scene"]]
    assert extra["abs_rel_frame_aligned"] < extra["abs_rel_sequence_aligned"]  # per-frame fits absorb drift
    assert all(0.0 <= v <= 1.0 for v in per_scene["boundary_f1"])
    assert extra["boundary_f1"] == pytest.approx(np.mean(per_scene["boundary_f1"]))
    assert "| boundary F1↑ | AbsRel seq-aligned↓ |" in (root / "results.md").read_text()


def test_report_files(reported):
    root, _ = reported
    names = sorted(p.name for p in (root / "report").iterdir())
    assert names == ["accuracy_vs_consistency.png", "frames_scannet.png", "index.html", "per_sequence.png"]
    page = (root / "report" / "index.html").read_text()
    assert page.count("<table>") == 3 and page.count('src="data:image/png;base64,') == 3  # self-contained
    assert "protocol vda · alignment scale_shift · predictions: disparity" in page
    frames = cv2.imread(str(root / "report" / "frames_scannet.png"))
    # input | prediction | GT | error, the 24x26 crop enlarged 7x (whole factor) to reach 160 px, 2 px gaps
    assert frames.shape[1] == 4 * 26 * 7 + 3 * 2


def test_unknown_metric_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--predictions", "p", "--benchmark-root", "b", "--benchmark", "scannet", "--metrics", "+sharpness"])
    assert exit_info.value.code == 2
    assert "unknown metric(s) sharpness in --metrics; known: +boundary_f1, +drift" in capsys.readouterr().err


def test_compare_report_groups_by_alignment(reported, tmp_path):
    """Two runs scored under different alignments never share a table: one table per group."""
    root, results = reported
    other = json.loads(json.dumps(results))
    other["meta"]["label"], other["alignment"] = "metric", "scale"
    for path, r in ((tmp_path / "a.json", results), (tmp_path / "b.json", other)):
        path.write_text(json.dumps(r))
    assert main(["--compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--report", str(tmp_path / "r")]) == 0
    page = (tmp_path / "r" / "index.html").read_text()
    assert "alignment scale_shift · predictions: disparity" in page
    assert "alignment scale · predictions: disparity" in page
    assert "frames_scannet.png" in page  # frames from the predictions folder the results name
    # another protocol's run: its own group, and no frames drawn with the vda alignments its names resemble
    other["protocol"] = "cut3r"
    page = write_report(tmp_path / "c", {"cut3r run": other}).read_text()
    assert "protocol cut3r · alignment scale" in page and "no example frames" in page


def _browser():
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


def test_report_renders_in_headless_chromium(reported, tmp_path):
    browser = _browser()
    if browser is None:
        pytest.skip(f"no headless browser installed (looked for {', '.join(BROWSERS)}; apt-get install chromium)")
    root, _ = reported
    url = (root / "report" / "index.html").resolve().as_uri()
    common = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
              f"--user-data-dir={tmp_path / 'profile'}"]
    shot = tmp_path / "shot.png"
    subprocess.run([*common, "--window-size=1200,1600", f"--screenshot={shot}", url], check=True,
                   capture_output=True, timeout=120)
    image = cv2.imread(str(shot))
    assert image is not None and image.shape[:2] == (1600, 1200)
    ink = (image < 200).any(axis=2).mean()  # text, table borders, charts and pictures on a white page
    colours = len(np.unique(image.reshape(-1, 3), axis=0))
    assert ink > 0.03 and colours > 200, (ink, colours)
    dom = subprocess.run([*common, "--dump-dom", url], check=True, capture_output=True, text=True, timeout=120).stdout
    assert dom.count("<table>") == 3 and "ScanNet TAE↓" in dom and "boundary F1↑" in dom
    assert dom.count("<img ") == 3
