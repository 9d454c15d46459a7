"""vda-pseudolabel: image shards in, the same shards with the teacher's disparity as pseudo-labels out."""
from __future__ import annotations

import os

import numpy as np


def test_pseudolabel_writes_teacher_disparity(image_shards, tiny_checkpoints, tmp_path, capsys):
    from vda_lightning.data.format import decode_members
    from vda_lightning.data.streams import SkipCounters, iter_tar_samples
    from vda_lightning.training.pseudolabel import label_frames, main
    from vda_lightning.training.teacher import Teacher

    (shard,) = image_shards
    ckpt = str(tiny_checkpoints["image"])
    args = [shard, "--output", str(tmp_path / "out"), "--teacher-encoder", "vitt", "--teacher-checkpoint", ckpt,
            "--input-size", "28", "--device", "cpu"]
    assert main(args + ["--depth-encoding", "f32"]) == 0
    assert "labelled 3" in capsys.readouterr().out
    read = lambda path: [decode_members(raw) for raw in iter_tar_samples(path, SkipCounters(0))]
    inputs, records = read(shard), read(str(tmp_path / "out" / os.path.basename(shard)))
    assert [r.key for r in records] == [r.key for r in inputs]  # same samples, same order, same keys
    teacher = Teacher("vitt", ckpt)
    for rec, src in zip(records, inputs):
        np.testing.assert_array_equal(rec.frames, src.frames)
        assert rec.depth_kind == "pseudo_label" and rec.depth.shape == (1, 28, 42)
        expected = label_frames(teacher, rec.frames, 28, "cpu").numpy()
        assert np.allclose(rec.depth, expected, atol=1e-6)
    # A finished shard is not redone.
    assert main(args) == 0
    assert "shards_already_done 1" in capsys.readouterr().out
