"""Data: the shard format, depth readers, synthetic scenes, streaming DataModule and the vda shard converter."""
from ..lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(["ClipRecord", "SampleError", "DEPTH_KINDS", "SKIP_REASONS", "encode_record", "decode_members"],
                    "format"),
    **dict.fromkeys(["ShardWriter", "expand_shards", "count_samples", "read_index", "shard_is_complete"], "shards"),
    "generate_synthetic_shards": "synthetic_scenes",
    "VideoDepthDataModule": "datamodule",
}
__all__ = list(_EXPORTS)
# Names resolve on first use (vda_lightning/lazy.py): the converter needs neither lightning nor OpenCV to start.
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
