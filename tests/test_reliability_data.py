"""Data faults of the fault-injection pass: a tar cut exactly at a member boundary is noticed (the index says how
many samples there were), and vda-pseudolabel skips and counts a bad sample instead of ending the run."""
from __future__ import annotations

import json
import logging
import tarfile

import numpy as np
import torch

from vda_lightning.data.datamodule import ValConfig, VideoDepthDataModule
from vda_lightning.data.format import ClipRecord, encode_record
from vda_lightning.data.shards import ShardWriter, read_index
from vda_lightning.data.streams import SkipCounters, iter_tar_samples

from tests.fakes.raw_tars import write_raw_tar

T, H, W = 2, 14, 28


def record(i: int, **kw) -> ClipRecord:
    rng = np.random.default_rng(i)
    return ClipRecord(rng.integers(0, 256, (T, H, W, 3), dtype=np.uint8), "toy", f"s{i}", list(range(T)),
                      depth=rng.uniform(1, 5, (T, H, W)).astype(np.float32), **kw)


def cut_at_member_boundary(path, keep_samples: int) -> None:
    """Truncate the tar right before the first header of sample `keep_samples` (no end-of-archive blocks)."""
    keys = read_index(path)["keys"]
    with tarfile.open(path) as tar:
        offset = next(m.offset for m in tar.getmembers() if m.name.startswith(keys[keep_samples] + "."))
    data = open(path, "rb").read()[:offset]
    open(path, "wb").write(data)


def test_a_tar_cut_at_a_member_boundary_is_a_counted_tar_error(tmp_path, caplog):
    path = str(tmp_path / "val-000000.tar")
    with ShardWriter(path) as w:
        for i in range(5):
            w.write(record(i))
    cut_at_member_boundary(path, 3)
    with tarfile.open(path) as tar:  # the cut tar is a valid-looking tar: nothing but the index can tell
        assert len(tar.getmembers()) == 3 * (1 + 2 * T)
    counters = SkipCounters(0, "t")
    with caplog.at_level(logging.WARNING, logger="vda_lightning.data"):
        raws = list(iter_tar_samples(path, counters))
    assert len(raws) == 3
    assert counters.as_dict()["tar_error"] == 1
    assert "ends after 3 of the 5 samples its index lists (2 lost" in caplog.text and path in caplog.text

    dm = VideoDepthDataModule(val_shards=path, val=ValConfig(size=0, num_workers=0), clip_len=T)
    dm.setup("validate")
    assert sum(len(b["key"]) for b in dm.val_dataloader()) == 3
    assert dm.skip_counts()["val"]["tar_error"] == 1 and dm.skip_counts()["val"]["ok"] == 3


def test_inspect_reports_the_shortfall(tmp_path, capsys, caplog):
    from vda_lightning.data.cli import main

    path = str(tmp_path / "val-000000.tar")
    with ShardWriter(path) as w:
        for i in range(4):
            w.write(record(i))
    cut_at_member_boundary(path, 2)
    with caplog.at_level(logging.WARNING, logger="vda_lightning.data"):
        assert main(["inspect", path, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["indexed_samples"] == 4 and summary["counts"]["ok"] == 2 and summary["counts"]["tar_error"] == 1
    assert "2 of the 4 samples its index lists" in caplog.text


def test_a_complete_shard_has_no_tar_error(tmp_path):
    path = str(tmp_path / "val-000000.tar")
    with ShardWriter(path) as w:
        for i in range(3):
            w.write(record(i))
    counters = SkipCounters(0, "t")
    assert len(list(iter_tar_samples(path, counters))) == 3 and counters.as_dict()["skipped"] == 0


def test_pseudolabel_skips_and_counts_a_bad_sample(tmp_path, capsys, caplog):
    from vda_lightning import save_model
    from vda_lightning.models import build_image_model
    from vda_lightning.training.pseudolabel import main

    def image(i):
        rng = np.random.default_rng(i)
        return ClipRecord(rng.integers(0, 255, (1, 28, 42, 3), dtype=np.uint8), "imgs", f"s{i}", [0],
                          depth_kind="none", sample_type="image")

    no_dataset = encode_record(image(1))
    meta = json.loads(no_dataset["json"])
    del meta["dataset"]
    no_dataset["json"] = json.dumps(meta).encode()
    shard = tmp_path / "in" / "image-000000.tar"
    shard.parent.mkdir()
    # a good sample, one whose json lacks `dataset`, one whose key the writer cannot store, a good one
    write_raw_tar(shard, [("good0", encode_record(image(0))), ("nodataset", no_dataset),
                 ("sub/dir", encode_record(image(2))), ("good3", encode_record(image(3)))])
    torch.manual_seed(0)
    ckpt = save_model(build_image_model("vitt"), tmp_path / "teacher.safetensors")
    with caplog.at_level(logging.WARNING, logger="vda_lightning.data"):
        code = main([str(shard), "--output", str(tmp_path / "out"), "--teacher-encoder", "vitt",
                     "--teacher-checkpoint", str(ckpt), "--input-size", "28", "--device", "cpu"])
    assert code == 0
    out = capsys.readouterr().out
    assert "labelled 2" in out and "skipped_bad_metadata 1" in out and "skipped_other_error 1" in out
    assert f"{shard}:nodataset" in caplog.text and f"{shard}:sub/dir" in caplog.text
    written = [raw["__key__"] for raw in iter_tar_samples(str(tmp_path / "out" / shard.name), SkipCounters(0))]
    assert written == ["good0", "good3"]
