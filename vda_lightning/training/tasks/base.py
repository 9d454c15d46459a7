"""`DepthTask`: the training loop every Video Depth Anything task shares; a task subclass says what it learns.

The DINOv2 encoder is frozen by default (no gradients, always in eval mode, run under no_grad); the head learns.
What the base owns: AdamW + warm-up/cosine, the non-finite skipping of a step and its counters, validation through
the evaluator callback, EMA, and the checkpoint hooks (the frozen encoder kept out by reference, `checkpoint["vda"]`
and the counters schema-checked on resume). What a task says (`tasks/relative.py`, `tasks/metric.py`): the model
it starts from (`initial_model`: relative or metric), its losses (`configure_losses`), the loss of a batch's video
and image parts (`video_loss_terms`, `image_loss_terms`), its validation alignment (`val_alignment`) and how a
prediction becomes depth for the frame's camera (`to_frame_camera`). (`initial_model`, not Lightning's
`configure_model` hook, which the Trainer calls again at every fit.)

Checkpoints follow the contract in `vda_lightning.checkpoints` (its package docstring): `load_model` reads them,
whichever task wrote them.
"""
from __future__ import annotations

import math
import os
from typing import Literal

import lightning as L
import torch

from ...models import build_video_model
from ..ema import EMACallback
from ..evaluator import ValidationEvaluator
from ..metric import parameter_groups

ENCODER_PREFIX = "model.pretrained."


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """LR multiplier: linear warm-up from ~0 to 1 over `warmup_steps`, then cosine from 1 to `min_ratio`."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


class DepthTask(L.LightningModule):
    """Trains `VideoDepthAnything`; a subclass is one task (relative disparity, metric depth).

    Args:
        encoder: model size (vits / vitb / vitl, or vitt for CPU tests) or a timm DINOv2 / DINOv3 ViT name
            (`vit_small_patch16_dinov3`: models/backbones.py); ignored when `init_checkpoint` says more.
        encoder_checkpoint: a timm backbone's pretrained weights without `init_checkpoint` (`hf://timm/<name>.<tag>`,
            timm's tag such as `lvd1689m`, or a local file: checkpoints/encoder_weights.py); None: random.
        encoder_taps: the four blocks a timm backbone's head reads (default: published table / evenly spaced).
        init_checkpoint: initial weights — a DAv2 `.pth` (paper: fresh temporal modules), a published VDA
            checkpoint, safetensors, or one of our checkpoints. None: random weights (tests / quick start).
        encoder_storage: "reference" keeps the frozen encoder out of checkpoints (path + sha256 of
            `init_checkpoint` instead); "embed" stores it. Without an init checkpoint it is always embedded.
        lr, weight_decay, betas, warmup_steps, min_lr_ratio, total_steps: AdamW + warm-up/cosine schedule;
            total_steps None = the Trainer's estimate (max_steps or epochs × batches).
        ema_decay: keep an EMA of the head weights (validated with the EMA weights when set).
        gradient_checkpointing: recompute head activations in backward (for 32×518×518 clips).
        val_max_depth: depth cap of the validation metrics (valid = 1e-3 < gt < cap) for datasets no registered
            benchmark scores; a benchmark's stream uses that benchmark's cap.
        val_input_size: inference input size for benchmark streams (published benchmarks: 518).
        freeze_encoder: False trains the encoder too (at `encoder_lr`, default lr / 10 as DAv2's metric recipe)
            and embeds it in checkpoints.
        speed_levers: models/speed.py levers for the model (compile, channels_last; cuda_graphs acts only without
            autograd, i.e. in validation). Checkpoints are unaffected. Measured by `vda bench train --levers`.
    """

    metric = False                    # the kind of model the task trains (its checkpoints' `config.metric`)
    val_alignment = "scale_shift"     # how validation scores it (`evaluation.functional.align_to_ground_truth`)

    def __init__(
        self,
        encoder: str = "vits",
        init_checkpoint: str | None = None,
        encoder_storage: Literal["reference", "embed"] = "reference",
        lr: float = 1e-4,
        weight_decay: float = 0.01,
        betas: tuple[float, float] = (0.9, 0.999),
        warmup_steps: int = 0,
        min_lr_ratio: float = 0.0,
        total_steps: int | None = None,
        ema_decay: float | None = None,
        gradient_checkpointing: bool = False,
        val_max_depth: float = 80.0,
        val_input_size: int = 518,
        freeze_encoder: bool = True,
        encoder_lr: float | None = None,
        speed_levers: list[str] | None = None,
        encoder_checkpoint: str | None = None,
        encoder_taps: list[int] | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()  # the subclass's own arguments too (Lightning collects every __init__ frame)
        if encoder_storage not in ("reference", "embed"):
            raise ValueError(f"encoder_storage must be 'reference' or 'embed', got {encoder_storage!r}")
        self.model = self.initial_model()
        self.freeze_encoder = freeze_encoder
        self._configure_trainable_parts(gradient_checkpointing, speed_levers)
        self.encoder_source = None
        if init_checkpoint and encoder_storage == "reference" and freeze_encoder:  # a trained encoder is embedded
            from ...checkpoints import checkpoint_path, file_sha256

            path = os.path.abspath(checkpoint_path(init_checkpoint))  # a Hub name: its file in the HF cache
            self.encoder_source = {"path": path, "sha256": file_sha256(path)}
        self.counters = {"skipped_nonfinite_loss": 0, "skipped_nonfinite_grad": 0}
        self.configure_losses()
        self.ema = EMACallback(ema_decay) if ema_decay else None
        self.evaluator = ValidationEvaluator(default_max_depth=val_max_depth, alignment=self.val_alignment)
        self._skip_this_step = False

    # ------------------------------------------------------------------ what a task says
    def initial_model(self) -> torch.nn.Module:
        """The model this task starts from (`self.hparams.encoder`, `init_checkpoint`), of the task's kind."""
        raise NotImplementedError

    def configure_losses(self) -> None:
        """Set the task's loss modules (and anything else its loss terms need) as attributes."""
        raise NotImplementedError

    def video_loss_terms(self, video: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(loss, {log name: value}) of a batch's video part."""
        raise NotImplementedError

    def image_loss_terms(self, image: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(loss, {log name: value}) of a batch's image part (one-frame clips)."""
        raise NotImplementedError

    def to_frame_camera(self, pred: torch.Tensor, K: torch.Tensor | None) -> torch.Tensor:
        """A prediction (B, T, H, W) as the task's validation scores it, for cameras K (B, 3, 3; None: the batch
        has none): unchanged here."""
        return pred

    # ------------------------------------------------------------------ the model
    def load_initial_model(self, metric: bool | None, dav2_max_depth: float | None = None) -> torch.nn.Module:
        """`init_checkpoint` loaded (random `encoder` weights without one), relative or metric as `metric` says
        (None: as the file says)."""
        encoder, init_checkpoint = self.hparams.encoder, self.hparams.init_checkpoint
        if init_checkpoint is None:
            taps = self.hparams.get("encoder_taps")
            model = build_video_model(encoder, metric=bool(metric), **({"layer_idx": taps} if taps else {}))
            if self.hparams.get("encoder_checkpoint"):
                from ...checkpoints.encoder_weights import load_encoder_weights

                load_encoder_weights(model, self.hparams.encoder_checkpoint)
            return model
        from ...checkpoints import load_model

        model = load_model(init_checkpoint, encoder=encoder, metric=metric, expect="any",
                           dav2_max_depth=dav2_max_depth)
        if model.config.encoder != encoder:
            raise ValueError(
                f"{init_checkpoint}: holds a {model.config.encoder!r} model but model.encoder is {encoder!r}"
            )
        return model

    def _configure_trainable_parts(self, gradient_checkpointing: bool, speed_levers: list[str] | None) -> None:
        self.model.pretrained.requires_grad_(not self.freeze_encoder).eval()
        if not self.freeze_encoder and hasattr(self.model.pretrained, "mask_token"):  # DINOv2's, never used
            self.model.pretrained.mask_token.requires_grad_(False)  # in a forward pass: it must not wait for a grad
        # The published head carries refinenet4.resConfUnit1 but never runs it: without gradients it stays
        # out of the optimizer, and plain DDP (find_unused_parameters=False) does not fail on it.
        self.model.head.scratch.refinenet4.resConfUnit1.requires_grad_(False)
        self.model.head.gradient_checkpointing = gradient_checkpointing
        if speed_levers:
            from ...models.speed import apply_levers

            apply_levers(self.model, speed_levers)

    def setup(self, stage: str) -> None:
        """A DataModule whose crops the encoder cannot take (a DINOv3 backbone's patch is 16, the DataModule's
        default check 14) is one line here, before any step, rather than a failure deep in the first forward."""
        data = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        patch = self.model.config.patch_size
        for name in ("crop_hw", "val_hw"):
            hw = getattr(data, name, None)
            if hw and any(int(v) % patch for v in hw):
                what = "crop_size" if name == "crop_hw" else "val.size"
                raise ValueError(f"data.{what} {list(hw)} is not a multiple of the {patch}-pixel patch of encoder "
                                 f"{self.model.config.encoder}: set data.patch_size: {patch} and sizes to match")

    def configure_callbacks(self):
        ours = [self.evaluator] + ([self.ema] if self.ema is not None else [])
        attached = getattr(self._trainer, "callbacks", None) or []  # a second fit/validate: already there
        return [cb for cb in ours if not any(cb is other for other in attached)]

    @property
    def val_results(self) -> dict[str, dict[str, float]]:
        """The last validation's table {dataset: {metric: value}} (the evaluator's)."""
        return self.evaluator.results

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze_encoder:
            self.model.pretrained.eval()  # frozen encoder: no dropout / batch statistics, whatever the mode
        return self

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) RGB in [0, 1] -> (B, T, H, W): the model's output (disparity, or metric depth for a
        metric task, canonical metres with its `canonical_focal`); gradients reach the head only unless the
        encoder is trained."""
        b, t, _, h, w = frames.shape
        x = self.model.config.input_contract().normalize(frames).flatten(0, 1)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_encoder):
            features = self.model.forward_features(x)
        depth, _ = self.model.forward_depth(features, h, w, b, t)
        return depth.float()

    # ------------------------------------------------------------------ training
    def training_step(self, batch: dict, batch_idx: int):
        video, image = batch.get("video"), batch.get("image")
        if video is None and image is None:
            raise ValueError("a training batch needs a 'video' or an 'image' part")
        total = torch.zeros((), device=self.device)
        logs = {}
        for part, terms in ((video, self.video_loss_terms), (image, self.image_loss_terms)):
            if part is not None:
                loss, part_logs = terms(part)
                total = total + loss
                logs.update(part_logs)
        self._skip_this_step = not bool(torch.isfinite(total))
        if self._skip_this_step:
            self.counters["skipped_nonfinite_loss"] += 1
            # A zero with a graph to every trainable parameter keeps backward (and DDP's all-reduce) uniform;
            # the optimizer step is then cancelled in on_before_optimizer_step.
            total = sum((p.sum() * 0.0 for p in self.trainable_parameters()), torch.zeros((), device=self.device))
        else:
            logs["train/total"] = total.detach()
            bs = (video or image)["frames"].shape[0]
            self.log_dict({k: v.detach() for k, v in logs.items()}, prog_bar=False, batch_size=bs)
            self.log("train/loss", total.detach(), prog_bar=True, batch_size=bs)
        return total

    def on_before_optimizer_step(self, optimizer) -> None:
        params = [p for p in self.trainable_parameters() if p.grad is not None]
        norm = torch.linalg.vector_norm(torch.stack([p.grad.detach().float().norm() for p in params])) if params \
            else torch.zeros((), device=self.device)
        bad = torch.tensor(float(self._skip_this_step or not torch.isfinite(norm)), device=self.device)
        bad = self.trainer.strategy.reduce(bad, reduce_op="max")  # every rank skips together
        if bad > 0:
            if not self._skip_this_step:
                self.counters["skipped_nonfinite_grad"] += 1
            for p in params:
                p.grad = None  # AdamW leaves parameters without gradients untouched (no decay, no moments)
        else:
            self.log("train/grad_norm", norm, batch_size=1)
        self.log("train/skipped_nonfinite_loss", float(self.counters["skipped_nonfinite_loss"]), batch_size=1)
        self.log("train/skipped_nonfinite_grad", float(self.counters["skipped_nonfinite_grad"]), batch_size=1)
        self._skip_this_step = False

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"], batch_size=1)

    def configure_optimizers(self):
        h = self.hparams
        groups = parameter_groups(self.model, h.lr, not self.freeze_encoder, h.encoder_lr)
        optimizer = torch.optim.AdamW(groups, lr=h.lr, weight_decay=h.weight_decay, betas=tuple(h.betas))
        total = h.total_steps or int(self.trainer.estimated_stepping_batches)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: warmup_cosine(step, h.warmup_steps, total, h.min_lr_ratio)
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    # ------------------------------------------------------------------ validation
    def validation_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0):
        """Predictions only; `self.evaluator` scores them. A stored benchmark sequence (`rgb`) goes through the
        long-video inference `vda-eval` uses; any other clip through one forward pass. The key says disparity; a
        metric task's output is metric depth (`to_frame_camera`: in metres for each sample's camera)."""
        if "rgb" in batch:
            pred = torch.from_numpy(self.benchmark_inference(batch["rgb"][0]))[None]
            K = batch.get("K")
            if K is not None:  # the sequence's first frame's camera (per-frame K (1, T, 3, 3))
                K = (K[0][0] if K[0].dim() == 3 else K[0])[None].cpu()
            return {"disparity": self.to_frame_camera(pred, K)[0].numpy()}
        return {"disparity": self.to_frame_camera(self(batch["frames"]), batch.get("K"))}

    @torch.no_grad()
    def benchmark_inference(self, rgb: torch.Tensor):
        """(T, H, W, 3) uint8 frames -> (T, H, W) float32 numpy disparity: `infer_video_depth` at `val_input_size`
        in fp32 (the published benchmark setting, whatever the trainer's precision), as `vda-eval --checkpoint`."""
        from ...inference import infer_video_depth

        frames = rgb.cpu().numpy()
        with torch.autocast(self.device.type, enabled=False):
            return infer_video_depth(self.model, frames, input_size=self.hparams.val_input_size,
                                     device=self.device, precision="fp32")

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        embed = self.encoder_source is None
        state = checkpoint["state_dict"]
        for key in list(state):
            if not embed and key.startswith(ENCODER_PREFIX):
                del state[key]
        checkpoint["vda"] = {
            "config": self.model.config.to_dict(),
            "encoder_source": self.encoder_source,
            "prefix": "model.",
        }
        checkpoint["vda_counters"] = dict(self.counters)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        from ...checkpoints import CheckpointError
        from ...checkpoints.metadata import lightning_info, training_counters

        state = checkpoint["state_dict"]
        where = getattr(self._trainer, "ckpt_path", None) or "the checkpoint being loaded"
        info = lightning_info(checkpoint.get("vda") or {}, where, CheckpointError)
        if not any(k.startswith(ENCODER_PREFIX) for k in state):
            saved = info.get("encoder_source") or {}
            ours = self.encoder_source or {}
            if saved.get("sha256") and saved.get("sha256") != ours.get("sha256"):
                raise ValueError(
                    f"this checkpoint's frozen encoder came from {saved.get('path')} (sha256 {saved['sha256'][:12]}…) "
                    f"but model.init_checkpoint is {ours.get('path')} (sha256 {str(ours.get('sha256'))[:12]}…)"
                )
            state.update({ENCODER_PREFIX + k: v for k, v in self.model.pretrained.state_dict().items()})
        self.counters.update(training_counters(checkpoint.get("vda_counters") or {}, where, CheckpointError))
