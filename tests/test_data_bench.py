"""`vda-bench data` (run_data_bench) prints figures and writes them as JSON."""
from __future__ import annotations

import json

import pytest

from vda_lightning.bench.data import run_data_bench


def test_data_bench_writes_figures(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert run_data_bench(["--clips", "2", "--frames", "3", "--size", "56", "--crop", "28", "--frame-format", "png",
                           "--work-dir", str(tmp_path), "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    (r,) = doc["per_worker"]
    assert r["name"] == "png+png16" and r["clips"] == 2 and r["clip_len"] == 3 and r["skipped"] == 0
    assert r["clips_per_s"] > 0 and r["MB_per_s"] > 0 and r["frames_per_s"] == pytest.approx(r["clips_per_s"] * 3)
    assert "clips/s" in capsys.readouterr().out
