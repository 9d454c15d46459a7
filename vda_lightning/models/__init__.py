"""Plain `nn.Module`s: the DINOv2 encoder, the (spatio-temporal) DPT head, VDA and DAv2; the model registry and
the input contract (`input_contract.py`, torch-free)."""
from ..lazy import lazy_exports

_EXPORTS = {
    "MODEL_CONFIGS": "configs",
    "ModelConfig": "configs",
    "get_config": "configs",
    "DEFAULT_CONTRACT": "input_contract",
    "InputContract": "input_contract",
    "DepthAnythingV2": "depth_anything",
    "VideoDepthAnything": "depth_anything",
    "build_image_model": "depth_anything",
    "build_video_model": "depth_anything",
    "video_model_from_image_model": "depth_anything",
    **dict.fromkeys(["dav2_to_video", "is_image_state_dict", "sigmoid_head_to_relu", "video_to_image"],
                    "depth_anything"),
    **dict.fromkeys(["dav2_to_transformers", "is_transformers_state_dict", "match_transformers",
                     "transformers_config", "transformers_to_dav2"], "depth_anything_hf"),
    "DinoV2Encoder": "encoder",
    "interpolate_pos_embed": "encoder",
}
__all__ = list(_EXPORTS)
# Names resolve on first use (vda_lightning/lazy.py): the CLI reads the registry in `configs.py` without torch.
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
