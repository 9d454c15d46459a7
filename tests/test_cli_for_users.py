"""Help and output written for users (issue 30): `vda shard --help` ends in what a user needs, synthetic and
inspect print a short table (JSON behind --json), and vda fit's error lines name the command that was typed."""
from __future__ import annotations

import json
import sys

from vda_lightning.data.cli import build_parser, main


def test_shard_help_ends_in_usage_not_internals():
    text = build_parser("vda shard").format_help()
    assert "SUBCOMMANDS" not in text and "register(" not in text and "add_arguments" not in text
    assert text.rstrip().endswith("Bad input: one line naming the file, exit status 2.")
    assert "--json" in text and "vda shard inspect" in text


def test_synthetic_and_inspect_print_tables_and_json_on_request(tmp_path, capsys):
    out = tmp_path / "shards"
    args = ["synthetic", "--out", str(out), "--train-clips", "3", "--val-clips", "1", "--clip-len", "4",
            "--height", "28", "--width", "28", "--clips-per-shard", "2"]
    assert main(args) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["split", "shards", "samples", "frames", "size"]
    assert table[1].split()[:4] == ["train", "2", "3", "12"] and table[1].endswith("KB")
    assert table[2].split()[:4] == ["val", "1", "1", "4"] and "28x28 (HxW)" in table[3]
    assert main([*args, "--json"]) == 0  # complete shards are not rewritten: the same summary, as JSON
    assert json.loads(capsys.readouterr().out) == {"train": 2, "val": 1}

    assert main(["inspect", str(out)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0] == "3 shard(s): 4 sample(s) read, 16 frames; skipped 0"
    assert table[1].split()[:5] == ["dataset", "samples", "with", "K", "with"]
    row = table[2].split()
    assert row[:5] == ["synthetic", "4", "4", "4", "metric_depth"] and row[6] == "m" and "% valid" in table[2]
    assert main(["inspect", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    lo, hi = summary["depth"]["synthetic"]["min"], summary["depth"]["synthetic"]["max"]
    assert row[5] == f"{lo:.3g}-{hi:.3g}"  # the table's range is the JSON's


def test_inspect_table_names_skips_by_reason():
    from vda_lightning.data.summary_tables import inspect_table

    summary = {"shards": 1, "frames": 6, "counts": {"ok": 2, "bad_metadata": 3, "tar_error": 0, "skipped": 3},
               "depth": {}, "geometry": {}}
    assert inspect_table(summary) == "1 shard(s): 2 sample(s) read, 6 frames; skipped 3 (bad_metadata 3)"


def test_fit_errors_name_the_command_typed(monkeypatch):
    from vda_lightning.training.cli import current_prog

    monkeypatch.setattr(sys, "argv", ["vda fit", "--config", "x.yaml"])  # what the vda dispatcher sets
    assert current_prog() == "vda fit"
    monkeypatch.setattr(sys, "argv", ["vda-fit", "--config", "x.yaml"])
    assert current_prog() == "vda-fit"
