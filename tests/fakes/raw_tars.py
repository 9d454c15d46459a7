"""Tar shards written member by member, bypassing `ShardWriter`: for damaged, hostile or hand-built samples."""
from __future__ import annotations

import io
import tarfile


def write_raw_tar(path, samples) -> None:
    """`samples`: [(key, {ext: bytes})] -> a USTAR tar holding `key.ext` members in that order."""
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for key, members in samples:
            for ext, data in members.items():
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
