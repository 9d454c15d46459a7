"""Data: the shard format, depth readers, synthetic scenes, streaming DataModule and the vda-shard converter."""
from .format import DEPTH_KINDS, SKIP_REASONS, ClipRecord, SampleError, decode_members, encode_record
from .shards import ShardWriter, count_samples, expand_shards, read_index, shard_is_complete
from .synthetic_scenes import generate_synthetic_shards, render_clip

__all__ = ["ClipRecord", "SampleError", "DEPTH_KINDS", "SKIP_REASONS", "encode_record", "decode_members",
           "ShardWriter", "expand_shards", "count_samples", "read_index", "shard_is_complete",
           "generate_synthetic_shards", "render_clip", "VideoDepthDataModule"]


def __getattr__(name):  # lazy: importing lightning costs seconds and the converter does not need it
    if name == "VideoDepthDataModule":
        from .datamodule import VideoDepthDataModule
        return VideoDepthDataModule
    raise AttributeError(name)
