"""`vda bench train` and `vda bench gpu` (scripts/gpu_check.sh) on the CPU: the paper's per-GPU batch share, a tiny
training bench whose figures are consistent with each other, the CUDA suite's report read back (skips with their
reason here), and the Markdown summary built from a report."""
from __future__ import annotations

import json

import pytest

from vda_lightning.bench import gpu
from vda_lightning.bench import main as bench_main
from vda_lightning.bench.train import per_gpu_share


def test_per_gpu_share_of_the_paper_batch():
    assert per_gpu_share(8) == (2, 16)  # 16 clips + 128 images on one 8-GPU node
    assert per_gpu_share(1) == (16, 128)
    assert per_gpu_share(3) == (6, 43)  # rounded up: no GPU sees less than its share


def test_train_bench_tiny(tmp_path, capsys):
    out = tmp_path / "train.json"
    assert bench_main(["train", "--device", "cpu", "--encoder", "vitt", "--precision", "32-true",
                       "--checkpointing", "off,on", "--clips", "1", "--images", "1", "--frames", "2", "--size", "28",
                       "--steps", "1", "--warmup", "0", "--workers", "2", "--loader-clips", "1", "--threads", "1",
                       "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    rows = report["results"]
    assert [r["checkpointing"] for r in rows] == ["off", "on"] and report["per_gpu_share"] == [2, 16]
    loader = report["loader"]
    assert loader["loader_clips_per_s"] == pytest.approx(loader["per_worker_clips_per_s"] * loader["workers_counted"])
    for r in rows:
        assert r["clips_per_s"] == pytest.approx(1 / r["step_s"])
        assert r["images_per_s"] == pytest.approx(1 / r["step_s"])
        assert r["bottleneck"] == ("loader" if loader["loader_clips_per_s"] < r["clips_per_s"] else "compute")
        assert r["loss_first"] == r["loss_first"] and r["loss_first"] > 0  # finite, positive
    assert "bottleneck" in capsys.readouterr().out


def test_train_bench_rejects_a_size_off_the_patch_grid(capsys):
    with pytest.raises(SystemExit) as e:
        bench_main(["train", "--size", "30"])
    assert e.value.code == 2 and "--size must be a positive multiple of 14" in capsys.readouterr().err


def test_suite_summary_reads_pytest_junit(tmp_path):
    xml = tmp_path / "r.xml"
    xml.write_text("""<?xml version="1.0"?><testsuites><testsuite>
<testcase classname="tests.cuda.a" name="ok"/>
<testcase classname="tests.cuda.a" name="bad"><failure message="assert 0.3 &lt;= 0.1&#10;more">tb</failure></testcase>
<testcase classname="tests.cuda.b" name="s1"><skipped message="needs a CUDA device"/></testcase>
<testcase classname="tests.cuda.b" name="s2"><skipped message="needs a CUDA device"/></testcase>
</testsuite></testsuites>""")
    s = gpu.suite_summary(xml)
    assert (s["passed"], s["failed"], s["skipped"], s["errors"]) == (1, 1, 2, 0)
    assert s["failures"] == ["tests.cuda.a::bad: assert 0.3 <= 0.1"]
    assert s["skip_reasons"] == {"needs a CUDA device": 2}
    assert gpu.suite_summary(tmp_path / "missing.xml")["failures"] == ["no report written"]


def test_gpu_check_runs_the_cuda_suite_and_reports_its_skips(tmp_path):
    """The suite step for real (a pytest subprocess on tests/cuda): here every test skips with the reason."""
    assert bench_main(["gpu", str(tmp_path), "--steps", "suite"]) == 0
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    suite = report["steps"]["suite"]
    assert report["profile"] == "cpu" and report["ok"] and suite["failed"] == 0 and suite["passed"] == 0
    assert suite["skipped"] >= 15 and all("needs a CUDA device" in r for r in suite["skip_reasons"])
    md = (tmp_path / "gpu_check.md").read_text()
    assert "GPU figures are still to be taken" in md and f"skipped {suite['skipped']}" in md


def test_markdown_of_a_report_with_levers_and_a_failed_step():
    rows = [{"mode": "model", "encoder": "vits", "precision": "fp16", "levers": "none", "frames_per_s": 100.0},
            {"mode": "model", "encoder": "vits", "precision": "fp16", "levers": "compile", "frames_per_s": 150.0,
             "max_rel_diff_vs_no_levers": 2e-4}]
    report = {"profile": "gpu", "ok": False, "started": "s", "finished": "f",
              "machine": {"gpu": "NVIDIA H200", "torch": "2.x", "python": "3.x", "cpus": 16, "load_avg_at_end": [0]},
              "steps": {"levers": {"command": ["py", "-m", "vda_lightning.bench", "infer"], "exit": 0, "seconds": 3.0,
                                   "results": {"results": rows}},
                        "train": {"command": ["py", "-m", "vda_lightning.bench", "train"], "exit": 1, "seconds": 1.0,
                                  "tail": "RuntimeError: CUDA out of memory"}}}
    md = gpu.markdown(report)
    assert "NVIDIA H200" in md and "SOME STEPS FAILED" in md and "still to be taken" not in md
    assert "| model | vits | fp16 | compile | 150.00 | 1.50x | 2.0e-04 |" in md
    assert "CUDA out of memory" in md


@pytest.mark.parametrize("profile", sorted(gpu.PROFILES))
def test_every_profile_step_parses(profile, tmp_path):
    """The GPU profile cannot run here; its commands must at least be valid (a typo would cost a device call)."""
    from vda_lightning.bench import data, infer, train

    for name, template in gpu.PROFILES[profile]:
        argv = [a.replace("{out}", str(tmp_path)) for a in template]
        if argv[0] == "infer":
            args = infer.parse_args(argv[1:])
            assert args.mode_list and args.lever_sets, name
        elif argv[0] == "data":
            args = data.build_parser().parse_args(argv[1:])
            assert args.crop % 14 == 0 and args.augment_on == ["cpu", "device"], name
        else:
            args = train.build_parser().parse_args(argv[1:])
            assert args.size % 14 == 0, name
        assert argv[argv.index("--json") + 1].startswith(str(tmp_path)), name
