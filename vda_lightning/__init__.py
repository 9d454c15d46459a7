"""vda-lightning: train, evaluate and run Video Depth Anything with PyTorch Lightning."""
from .checkpoints import CheckpointError, load_image_model, load_model, save_model

__version__ = "0.1.0"
__all__ = ["load_model", "load_image_model", "save_model", "CheckpointError", "__version__"]
