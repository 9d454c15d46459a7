"""vda-lightning: train, evaluate and run Video Depth Anything with PyTorch Lightning.

    import vda_lightning as vda
    model = vda.load_model("video_depth_anything_vits.pth")
    frames, fps = vda.read_video("clip.mp4", max_res=1280)   # the published run.py front end, to the pixel
    depths = vda.infer_video(model, frames)                  # float32 (N, H, W); vda.infer_video_iter streams
"""
from .lazy import lazy_exports

__version__ = "0.1.0"
_EXPORTS = {
    "load_model": "checkpoints", "load_image_model": "checkpoints", "save_model": "checkpoints",
    "CheckpointError": "checkpoints",
    "read_video": "inference.frame_sources", "infer_video": "inference.api", "infer_video_iter": "inference.api",
}
__all__ = [*_EXPORTS, "__version__"]
# Names resolve on first use (vda_lightning/lazy.py): `import vda_lightning` does not import torch.
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
