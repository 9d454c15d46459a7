"""Plain `nn.Module`s: the DINOv2 encoder, the (spatio-temporal) DPT head, VDA and DAv2."""
from .configs import MODEL_CONFIGS, ModelConfig, get_config
from .depth_anything import (
    DepthAnythingV2,
    VideoDepthAnything,
    build_image_model,
    build_video_model,
    video_model_from_image_model,
)
from .encoder import DinoV2Encoder, interpolate_pos_embed

__all__ = [
    "MODEL_CONFIGS",
    "ModelConfig",
    "get_config",
    "DepthAnythingV2",
    "VideoDepthAnything",
    "build_image_model",
    "build_video_model",
    "video_model_from_image_model",
    "DinoV2Encoder",
    "interpolate_pos_embed",
]
