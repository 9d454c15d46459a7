"""Training: the LightningModule, the teacher, EMA, callbacks and the vda-fit / vda-pseudolabel commands."""
from .module import VideoDepthModule, warmup_cosine
from .teacher import Teacher

__all__ = ["VideoDepthModule", "Teacher", "warmup_cosine"]
