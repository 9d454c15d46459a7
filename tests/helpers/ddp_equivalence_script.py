"""Train the vitt head for a few steps on CPU with 1 or 2 processes over the same clips, validate, and save head
weights + validation metrics (rank 0). Run by tests/test_ddp_equivalence.py as a subprocess: strategy `ddp`
re-launches this script for rank 1, which would re-run pytest if done in process.

The data are real shards read by VideoDepthDataModule. Its readers are the (rank, worker) pairs, slot = rank *
workers + worker, so 2 ranks x 1 worker and 1 rank x 2 workers have the same two readers: optimizer step k of the
2-rank run averages the gradients of reader 0's and reader 1's k-th clips across ranks; the 1-process run gets
the same two clips as consecutive batches (worker round robin) and accumulates them (accumulate_grad_batches 2).

    python tests/helpers/ddp_equivalence_script.py --devices 2 --steps 3 --out result.pt --run-dir DIR --shards DIR
"""
from __future__ import annotations

import argparse
import os

import lightning as L
import torch

from vda_lightning.cluster.ddp_report import DDPScaleReport
from vda_lightning.data import VideoDepthDataModule
from vda_lightning.data.datamodule import ValConfig
from vda_lightning.data.transforms import AugmentConfig
from vda_lightning.training import RelativeDepthTask
from vda_lightning.training.checkpoint_io import AtomicCheckpointIO

READERS = 2  # ranks x workers, the same in both runs


class SGDModule(RelativeDepthTask):
    """Plain SGD: AdamW's first steps are ~lr·sign(grad), which turns float-order noise in the exactly-zero-ish
    gradients of the zero-initialised temporal projections into lr-sized weight differences (seen: 3·lr after 3
    steps) — a property of Adam, not of DDP. SGD keeps weight differences proportional to gradient differences."""

    def configure_optimizers(self):
        return torch.optim.SGD([p for p in self.model.head.parameters() if p.requires_grad], lr=self.hparams.lr)


class RecordingCheckpointIO(AtomicCheckpointIO):
    """Notes which rank wrote each checkpoint (the test asserts: only rank 0)."""

    def __init__(self, record: str):
        super().__init__()
        self.record = record

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        with open(self.record, "a") as f:
            f.write(f"{os.environ.get('RANK', os.environ.get('LOCAL_RANK', '0'))} {os.path.basename(path)}\n")
        super().save_checkpoint(checkpoint, path, storage_options)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--devices", type=int, required=True)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--out", required=True)
    p.add_argument("--run-dir", required=True)
    p.add_argument("--shards", required=True)
    p.add_argument("--tgm-weight", type=float, default=10.0)
    a = p.parse_args()
    torch.set_num_threads(1)
    L.seed_everything(0)
    # One clip per rank and per micro-batch: every loss term (spatial and TGM, which averages over a batch's frame
    # pairs) is a per-clip mean in both runs, so the paper's TGM weight stays on.
    model = SGDModule(encoder="vitt", lr=0.05, tgm_weight=a.tgm_weight)
    data = VideoDepthDataModule(train_shards=f"{a.shards}/train-*.tar", val_shards=f"{a.shards}/val-*.tar",
                                clip_len=2, crop_size=[28, 42], val=ValConfig(size=0, num_workers=1), batch_size=1,
                                num_workers=READERS // a.devices, epoch_length=10**6,
                                shuffle_buffer=2, augment=AugmentConfig(scale=(0.7, 1.0)))
    report = DDPScaleReport()
    trainer = L.Trainer(
        accelerator="cpu", devices=a.devices, max_steps=a.steps, accumulate_grad_batches=READERS // a.devices,
        strategy=os.environ.get("VDA_TEST_STRATEGY", "ddp") if a.devices > 1 else "auto",
        check_val_every_n_epoch=None, val_check_interval=10**6, num_sanity_val_steps=0, logger=False,
        enable_progress_bar=False, enable_model_summary=False,
        default_root_dir=a.run_dir, plugins=[RecordingCheckpointIO(os.path.join(a.run_dir, "writers.txt"))],
        callbacks=[L.pytorch.callbacks.ModelCheckpoint(dirpath=os.path.join(a.run_dir, "ckpt"), every_n_train_steps=1),
                   report],
    )
    initial = {k: v.detach().clone() for k, v in model.model.head.state_dict().items()}
    trainer.fit(model, datamodule=data)
    trainer.validate(model, datamodule=data, verbose=False)
    if trainer.is_global_zero:
        head = {k: v.detach().clone() for k, v in model.model.head.state_dict().items()}
        torch.save({"head": head, "initial_head": initial, "val": model.val_results, "world_size": trainer.world_size,
                    "effective_batch": report.summary["ddp/effective_batch"]}, a.out)


if __name__ == "__main__":
    main()
