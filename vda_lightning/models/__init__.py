"""Plain `nn.Module`s: the DINOv2 encoder, the (spatio-temporal) DPT head, VDA and DAv2."""
from ..lazy import lazy_exports

_EXPORTS = {
    "MODEL_CONFIGS": "configs",
    "ModelConfig": "configs",
    "get_config": "configs",
    "DepthAnythingV2": "depth_anything",
    "VideoDepthAnything": "depth_anything",
    "build_image_model": "depth_anything",
    "build_video_model": "depth_anything",
    "video_model_from_image_model": "depth_anything",
    "DinoV2Encoder": "encoder",
    "interpolate_pos_embed": "encoder",
}
__all__ = list(_EXPORTS)
# Names resolve on first use (vda_lightning/lazy.py): the CLI reads the registry in `configs.py` without torch.
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
