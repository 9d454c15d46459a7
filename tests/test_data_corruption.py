"""A shard with a bad PNG, a NaN depth, a wrong-shape depth and a truncated member streams to the end;
the counters say what was skipped and why."""
from __future__ import annotations

import io
import logging

import numpy as np
import pytest

from vda_lightning.data.datamodule import ValConfig, VideoDepthDataModule
from vda_lightning.data.format import ClipRecord, encode_record, sample_key

from tests.fakes.raw_tars import write_raw_tar

T, H, W = 2, 14, 28


def record(i: int) -> ClipRecord:
    rng = np.random.default_rng(i)
    return ClipRecord(rng.integers(0, 256, (T, H, W, 3), dtype=np.uint8), "toy", f"s{i}", list(range(T)),
                      depth=rng.uniform(1, 5, (T, H, W)).astype(np.float32), key=sample_key("toy", f"s{i}", 0))


def npy(a) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def write_bad_shard(path):
    """Samples: good0, bad PNG, NaN depth, wrong-shape depth, good4, good5 (last member cut in half)."""
    samples = []
    for i in range(6):
        rec = record(i)
        members = encode_record(rec, depth_encoding="f32" if i == 2 else "png16")
        if i == 1:
            members["frame001.png"] = b"\x89PNG\r\n\x1a\n" + b"garbage" * 10
        if i == 2:  # the writer never stores NaN; a foreign or damaged shard might
            members["depth.npy"] = npy(np.where(np.arange(W) == 3, np.nan, rec.depth).astype(np.float32))
        if i == 3:
            import cv2

            members["depth001.png"] = cv2.imencode(".png", np.ones((H + 1, W), np.uint16))[1].tobytes()
        samples.append((rec.key, members))
    write_raw_tar(path, samples)
    # truncate inside the data of the last sample's last member
    raw = open(path, "rb").read()
    last_key, last = samples[-1]
    last_ext = list(last)[-1]
    pos = raw.rfind(f"{last_key}.{last_ext}".encode()) + 512 + len(last[last_ext]) // 2
    open(path, "wb").write(raw[:pos])


EXPECTED = {"ok": 2, "bad_image": 1, "nonfinite_depth": 1, "bad_shape": 1, "tar_error": 1, "missing_member": 1}


def nonzero(counts):
    return {k: v for k, v in counts.items() if v and k != "skipped"}


def test_validation_streams_to_the_end_and_counts(tmp_path, caplog):
    path = str(tmp_path / "bad-000000.tar")
    write_bad_shard(path)
    dm = VideoDepthDataModule(val_shards=path, val=ValConfig(size=[14, 28], num_workers=0), clip_len=T)
    dm.setup("validate")
    with caplog.at_level(logging.WARNING, logger="vda_lightning.data"):
        keys = [k for b in dm.val_dataloader() for k in b["key"]]
    assert keys == ["toy__s0__000000", "toy__s4__000000"]
    counts = dm.skip_counts()["val"]
    assert nonzero(counts) == EXPECTED and counts["skipped"] == 5
    text = caplog.text
    for reason in ("bad_image", "nonfinite_depth", "bad_shape", "tar_error", "missing_member"):
        assert reason in text
    assert "toy__s1__000000" in text and "bad-000000.tar" in text  # the log line names the sample and shard
    assert dm.data_metrics()["data/val_bad_image"] == 1.0


@pytest.mark.parametrize("workers", [0, 2])
def test_training_never_crashes_and_counts_across_workers(tmp_path, workers):
    paths = [str(tmp_path / f"bad-{i:06d}.tar") for i in range(2)]
    for p in paths:
        write_bad_shard(p)
    dm = VideoDepthDataModule(train_shards=str(tmp_path / "bad-{000000..000001}.tar"), clip_len=T,
                              crop_size=[14, 28], batch_size=1, num_workers=workers, epoch_length=6,
                              shuffle_buffer=1)
    dm.setup("fit")
    steps = list(dm.train_dataloader())
    assert len(steps) == 6
    assert {k for s in steps for k in s["video"]["key"]} <= {"toy__s0__000000", "toy__s4__000000"}
    counts = dm.skip_counts()["train_video"]  # workers write into shared memory: visible here
    for reason in ("bad_image", "nonfinite_depth", "bad_shape", "tar_error", "missing_member"):
        assert counts[reason] >= 2, (reason, counts)  # both shards read at least once
    assert counts["ok"] >= 6 and counts["other_error"] == 0 and counts["too_short"] == 0


def test_a_dataset_that_never_decodes_stops_with_an_error(tmp_path):
    path = tmp_path / "junk-000000.tar"
    path.write_bytes(b"this is not a tar file" * 100)
    dm = VideoDepthDataModule(train_shards=str(path), clip_len=T, crop_size=[14, 28], num_workers=0,
                              epoch_length=2)
    dm.setup("fit")
    with pytest.raises(RuntimeError, match="gave no sample"):
        list(dm.train_dataloader())
    assert dm.skip_counts()["train_video"]["tar_error"] >= 3
