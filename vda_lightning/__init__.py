"""vda-lightning: train, evaluate and run Video Depth Anything with PyTorch Lightning."""
from .lazy import lazy_exports

__version__ = "0.1.0"
__all__ = ["load_model", "load_image_model", "save_model", "CheckpointError", "__version__"]
# Names resolve on first use (vda_lightning/lazy.py): `import vda_lightning` does not import torch.
__getattr__, __dir__ = lazy_exports(__name__, {name: "checkpoints" for name in __all__[:-1]})
