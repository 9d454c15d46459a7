"""vda-pseudolabel: image shards in, the same shards with the teacher's disparity as pseudo-labels out."""
from __future__ import annotations

import numpy as np
import torch

from vda_lightning import save_model
from vda_lightning.models import build_image_model


def test_pseudolabel_writes_teacher_disparity(tmp_path, capsys):
    from vda_lightning.data.format import ClipRecord, decode_members
    from vda_lightning.data.shards import ShardWriter
    from vda_lightning.data.streams import SkipCounters, iter_tar_samples
    from vda_lightning.training.pseudolabel import label_frames, main
    from vda_lightning.training.teacher import Teacher

    rng = np.random.default_rng(0)
    shard = tmp_path / "in" / "image-000000.tar"
    with ShardWriter(str(shard)) as writer:
        for i in range(3):
            frames = rng.integers(0, 255, (1, 28, 42, 3), dtype=np.uint8)
            writer.write(ClipRecord(frames=frames, dataset="imgs", sequence=f"s{i}", frame_indices=[0],
                                    depth_kind="none", sample_type="image"))
    torch.manual_seed(0)
    ckpt = save_model(build_image_model("vitt"), tmp_path / "teacher.safetensors")
    main([str(shard), "--output", str(tmp_path / "out"), "--teacher-encoder", "vitt",
          "--teacher-checkpoint", str(ckpt), "--input-size", "28", "--device", "cpu", "--depth-encoding", "f32"])
    assert "labelled 3" in capsys.readouterr().out
    teacher = Teacher("vitt", str(ckpt))
    records = [decode_members(raw) for raw in iter_tar_samples(str(tmp_path / "out" / shard.name), SkipCounters(0))]
    assert [r.sequence for r in records] == ["s0", "s1", "s2"]
    for rec in records:
        assert rec.depth_kind == "pseudo_label" and rec.depth.shape == (1, 28, 42)
        expected = label_frames(teacher, rec.frames, 28, "cpu").numpy()
        assert np.allclose(rec.depth, expected, atol=1e-6)
    # A finished shard is not redone.
    main([str(shard), "--output", str(tmp_path / "out"), "--teacher-encoder", "vitt",
          "--teacher-checkpoint", str(ckpt), "--input-size", "28", "--device", "cpu"])
    assert "shards_already_done 1" in capsys.readouterr().out
