"""`vda bench speed`: options refused in one line before any worker starts, and the report's Markdown says each
loop's ratio against its goal, the outputs' difference and the load; a part that is not there is said so."""
from __future__ import annotations

from vda_lightning.bench import speed


def test_a_published_folder_that_is_not_a_checkout_is_one_line(tmp_path, capsys):
    assert speed.run_speed_bench(["--published", str(tmp_path), "--skip", "startup,streaming",
                                  "--out-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a checkout of the published code" in err[0] and str(tmp_path) in err[0]
    assert speed.run_speed_bench(["--skip", "loop,warp", "--out-dir", str(tmp_path)]) == 2
    assert "unknown part(s) warp" in capsys.readouterr().err
    assert not list(tmp_path.glob("speed_*"))


def test_markdown_reports_ratios_goals_difference_and_load():
    run = {"seconds": 10.0, "cpu_seconds": 20.0}
    report = {"date": "2026-12-07T15:00:00+00:00", "command": "vda bench speed", "cpus": 2,
              "load_avg_at_start": (5.0, 4.0, 3.0), "load_avg_at_end": (6.0, 5.0, 4.0),
              "startup": {"missing": "vda_lightning/bench/startup.py is not there yet: no figure"},
              "streaming": {"skipped": True},
              "loop": [{"input_size": 280, "frames": 70, "published": {**run, "seconds": 25.0}, "ours": run,
                        "speedup": 2.5, "cpu_speedup": 1.25, "max_abs_diff": 3e-6, "goal": 2.5,
                        "backend": "pytorch"}]}
    text = speed.markdown(report)
    assert "| 280 | 70 | 25.0 | 10.0 | 2.50× (≥ 2.5×) | 1.25× | 3.0e-06 | pytorch |" in text
    assert "load average at start 5.0, 4.0, 3.0" in text and "startup.py is not there yet" in text
    assert "skipped (--skip)" in text
