"""The real VideoDepthDataModule resumes exactly, in process: a one-parameter module records which samples each
step trains on; runs resumed from a mid-epoch, an end-of-epoch and a second-epoch checkpoint (2 dataloader
workers, a shuffle buffer, augmentation on) see the very steps the uninterrupted run saw. A checkpoint taken
with other settings resumes with a warning that says the stream starts afresh."""
from __future__ import annotations

import logging

import lightning as L
import pytest
import torch

from vda_lightning.data import VideoDepthDataModule

EPOCH, STEPS = 5, 12


class Recorder(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.seen: dict[int, list[str]] = {}

    def training_step(self, batch, batch_idx):
        assert "_reader" not in batch  # the DataModule strips its bookkeeping before the model sees a batch
        self.seen[self.global_step] = list(batch["video"]["key"]) + [f"crop{batch['video']['frames'].sum():.6f}"]
        return (self.w * batch["video"]["frames"].mean()).sum() + self.w.square().sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _data(shards, workers=2):
    return VideoDepthDataModule(train_shards=str(shards / "train-*.tar"), clip_len=2, crop_size=[14, 28],
                                batch_size=1, num_workers=workers, epoch_length=EPOCH, shuffle_buffer=3, seed=3)


def _fit(tmp, shards, ckpt_path=None, workers=2, save=False) -> dict:
    callbacks = [L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp / "ckpt", every_n_train_steps=1, save_top_k=-1,
                                                     filename="{step}")] if save else []
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=STEPS, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=save, callbacks=callbacks,
                        default_root_dir=str(tmp))
    module = Recorder()
    trainer.fit(module, datamodule=_data(shards, workers), ckpt_path=ckpt_path)
    return module.seen


@pytest.fixture(scope="module")
def reference(synthetic_shards, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("data_resume")
    return tmp, _fit(tmp, synthetic_shards, save=True)


@pytest.mark.parametrize("step", [3, EPOCH, EPOCH + 2])  # mid-epoch, the epoch's last step, inside epoch 2
def test_resumed_stream_equals_the_uninterrupted_one(reference, synthetic_shards, tmp_path, step):
    tmp, seen = reference
    assert sorted(seen) == list(range(STEPS))
    assert len({tuple(v) for v in seen.values()}) == STEPS  # every step trained on something new
    resumed = _fit(tmp_path, synthetic_shards, ckpt_path=str(tmp / "ckpt" / f"step={step}.ckpt"))
    assert sorted(resumed) == list(range(step, STEPS))
    assert {s: resumed[s] for s in resumed} == {s: seen[s] for s in range(step, STEPS)}


def test_state_names_every_reader_and_changed_settings_restart_with_a_warning(reference, synthetic_shards,
                                                                             tmp_path, caplog):
    tmp, seen = reference
    state = torch.load(tmp / "ckpt" / "step=3.ckpt", weights_only=True)["VideoDepthDataModule"]
    (rank,) = state["ranks"]
    assert (state["world_size"], state["num_workers"], rank["epoch"], rank["consumed"]) == (1, 2, 0, 3)
    assert sorted(rank["readers"]) == [0, 1]
    reader = rank["readers"][0]  # reader 0 produced steps 0 and 2
    assert reader["steps"] == 2 and reader["video"][0]["taken"]["ok"] == 2
    assert reader["video"][0]["cursor"]["url"].endswith(".tar") and len(reader["video"][0]["buffer"]) == 3
    with caplog.at_level(logging.WARNING, logger="vda_lightning.data"):
        resumed = _fit(tmp_path, synthetic_shards, ckpt_path=str(tmp / "ckpt" / "step=3.ckpt"), workers=1)
    assert "saved with 1 rank(s) x 2 worker(s), now 1 x 1" in caplog.text and "starts afresh" in caplog.text
    assert sorted(resumed) == list(range(3, STEPS))
