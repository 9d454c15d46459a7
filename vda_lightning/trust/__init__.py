"""The trust boundary: every byte from outside the process enters through these checked readers.

Outside means checkpoints and their saved Lightning / DataModule state, export sidecars, benchmark and dataset
JSON, shard metadata, image / depth / array headers, file names and option values. The rules, and where each
lives (docs/reliability.md says which input gets which rule and names the test that attacks it):

1. **Schema first** (`schema.py`): a document is parsed with a size cap, no NaN tokens and bounded nesting, then
   checked against a declared schema (types, ranges, lengths; pydantic strict mode) before any value is used.
   Problems are one line naming the file and the place in it.
2. **Sizes from headers before allocating** (`headers.py`, `limits.py`): image, `.npy`/`.npz`, HDF5, EXR sizes are
   read from headers, compared with the bytes really there and with caps (VDA_MAX_PIXELS, VDA_MAX_ARRAY_BYTES,
   VDA_MAX_JSON_BYTES: overridable) before any buffer is sized from them.
3. **Paths confined to their root** (`paths.py`): a path written in a file is relative to its declared root and
   may not leave it; outputs named after inputs only from names that are valid UTF-8 without control characters;
   native decoders get bytes, never a name; only regular files are opened (no FIFO, no device).
4. **No process-spawning URL unless the user typed it** (`urls.py`): `pipe:` and the remote schemes that
   webdataset opens with a program are accepted from a command line or a config, never from a checkpoint, a
   sidecar or a JSON; a URL read from a file must be one the user configured.

Everything here is torch-free and cheap to import; decoders (OpenCV, Pillow, h5py, OpenEXR, pydantic) are imported
on first use. Every reader raises `ReadError` (or the `error=` type its caller passes) with one line.
"""
from .errors import ReadError
from .headers import (
    any_image_size,
    check_image_bytes,
    decode_image,
    exr_channels,
    image_size,
    load_hdf5,
    load_npy,
    load_npz,
    npy_header,
    read_image,
)
from .limits import check_array, check_pixels, max_array_bytes, max_json_bytes, max_pixels
from .lists import parse_path_list, read_path_list
from .paths import check_name, confine, confine_output, display, read_bytes, regular_file
from .schema import parse_json, read_json, validate
from .urls import check_url_from_file, is_remote, scheme

__all__ = [
    "ReadError",
    "any_image_size", "check_image_bytes", "decode_image", "exr_channels", "image_size", "load_hdf5", "load_npy",
    "load_npz", "npy_header", "read_image",
    "parse_path_list", "read_path_list",
    "check_array", "check_pixels", "max_array_bytes", "max_json_bytes", "max_pixels",
    "check_name", "confine", "confine_output", "display", "read_bytes", "regular_file",
    "parse_json", "read_json", "validate",
    "check_url_from_file", "is_remote", "scheme",
]
