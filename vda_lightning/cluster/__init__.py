"""Cluster runs: `vda-submit` (sbatch rendering), requeue on SIGUSR1 and resume from the newest valid checkpoint,
and the DDP batch-size / learning-rate arithmetic. See docs/cluster.md."""
from .resume import find_resume_checkpoint, is_valid_checkpoint
from .scaling import effective_batch_size, scaled_learning_rate

__all__ = ["find_resume_checkpoint", "is_valid_checkpoint", "effective_batch_size", "scaled_learning_rate"]
