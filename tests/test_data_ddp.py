"""DDP: 2 real processes (gloo, CPU, Lightning strategy 'ddp') stream training and validation data.

The test runs THIS FILE as a script in a subprocess (Lightning's ddp re-launches the script for rank 1; inside
pytest it would re-launch pytest), bounded by `timeout -s KILL` because a DDP hang ignores SIGTERM.
Also: exactly-once validation when there are fewer shards than readers (in process, no DDP needed).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

N_TRAIN_SHARDS, CLIPS_PER_SHARD, N_VAL_CLIPS, EPOCH_LENGTH, EPOCHS = 4, 2, 5, 4, 2


def make_shards(out: Path) -> None:
    from vda_lightning.data import generate_synthetic_shards

    generate_synthetic_shards(str(out), n_train_clips=N_TRAIN_SHARDS * CLIPS_PER_SHARD, n_val_clips=N_VAL_CLIPS,
                              clip_len=2, height=14, width=28, seed=1, clips_per_shard=CLIPS_PER_SHARD,
                              progress=False)
    # 5 val clips in shards of 2 → 3 val shards: more shards than the 2 ranks (x 1 worker)


def run_ddp(data: str, out: str) -> None:
    import lightning as L
    import torch

    from vda_lightning.data.datamodule import ValConfig, VideoDepthDataModule

    class Recorder(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.seen = {"train": [], "val": []}

        def training_step(self, batch, i):
            v = batch["video"]
            self.seen["train"].append({"epoch": self.current_epoch, "keys": v["key"], "shards": v["shard"]})
            return (self.w * v["frames"].mean()).sum() + self.w.square().sum()

        def validation_step(self, batch, i):
            self.seen["val"].extend(batch["key"])

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

        def on_fit_end(self):
            with open(os.path.join(out, f"rank{self.global_rank}.json"), "w") as f:
                json.dump(self.seen, f)

    # train: 2 workers per rank → 4 readers for 4 shards; batch 1 and 2 steps per worker per epoch, so
    # each reader consumes exactly the 2 clips of its first shard per epoch (shuffle buffer off to make it exact)
    dm = VideoDepthDataModule(train_shards=f"{data}/train-{{000000..000003}}.tar", val_shards=f"{data}/val-*.tar",
                              clip_len=2, crop_size=[14, 28], val=ValConfig(size=[14, 28], num_workers=1),
                              batch_size=1, num_workers=2, epoch_length=EPOCH_LENGTH, shuffle_buffer=1)
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_epochs=EPOCHS, num_sanity_val_steps=0,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.fit(Recorder(), datamodule=dm)


def test_two_process_ddp_each_rank_different_samples_same_steps_all_shards(tmp_path):
    make_shards(tmp_path / "data")
    out = tmp_path / "out"
    out.mkdir()
    timeout = shutil.which("timeout")
    cmd = [timeout, "-s", "KILL", "240"] if timeout else []
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]), OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd + [sys.executable, __file__, str(tmp_path / "data"), str(out)], env=env,
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    seen = [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]
    # both ranks ran the same number of steps: epoch_length per epoch
    assert [len(s["train"]) for s in seen] == [EPOCH_LENGTH * EPOCHS] * 2
    for epoch in range(EPOCHS):
        keys = [{k for st in s["train"] if st["epoch"] == epoch for k in st["keys"]} for s in seen]
        shards = [{os.path.basename(u) for st in s["train"] if st["epoch"] == epoch for u in st["shards"]}
                  for s in seen]
        assert not keys[0] & keys[1]  # each rank sees different samples
        assert len(keys[0]) == len(keys[1]) == EPOCH_LENGTH  # and no sample twice within a rank
        assert shards[0] | shards[1] == {f"train-{i:06d}.tar" for i in range(N_TRAIN_SHARDS)}  # every shard read
    # validation: every clip exactly once across ranks, in each of the 2 validation passes
    val = seen[0]["val"] + seen[1]["val"]
    expected = [f"synthetic__val{i:06d}__000000" for i in range(N_VAL_CLIPS)]
    assert sorted(val) == sorted(expected * EPOCHS)
    assert not set(seen[0]["val"]) & set(seen[1]["val"])


def test_exactly_once_validation_with_fewer_shards_than_readers(tmp_path):
    """1 shard, 3 ranks x 2 workers = 6 readers: split by sample, nothing padded or repeated."""
    import torch

    from vda_lightning.data import generate_synthetic_shards
    from vda_lightning.data.datasets import ValStream

    paths = generate_synthetic_shards(str(tmp_path), 0, 7, 1, 14, 14, seed=0, clips_per_shard=7, progress=False)
    got = []
    for rank in range(3):
        ds = ValStream(paths["val"], 0, None, 2, 1e-3, 0.0, 2)
        ds.set_distributed(rank, 3)
        loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)
        got.extend(k for b in loader for k in b["key"])
    assert sorted(got) == [f"synthetic__val{i:06d}__000000" for i in range(7)]
    assert np.unique(got).size == 7


if __name__ == "__main__":
    run_ddp(sys.argv[1], sys.argv[2])
