"""Reading frame images: decode with OpenCV, refuse broken files, optionally keep them in memory.

A frame that cannot be read is an error, never replaced by another: a stand-in hides broken data.
"""

from __future__ import annotations

import functools
import os
import struct
from pathlib import Path

import numpy as np

from fpar.errors import FparError

# The flow quantisation fpar's models read: each component clipped to +-FLOW_BOUND px and mapped
# linearly onto 0..255 (dense_flow's coding, `fpar prepare`'s default bound). Flow a manifest row
# records with another bound (EPIC-KITCHENS' is 25 px) is converted to it when read (docs/data.md).
FLOW_BOUND = 20.0
# The bounds a flow coding may have (docs/reliability.md): below half a pixel every motion is coded
# as saturated, above 100 px all of it as zero in 8 bits
FLOW_BOUND_RANGE = (0.5, 100.0)

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8"
# The most pixels fpar decodes in one picture (a frame, a GIF's screen), checked from the file's header
# before decoding: a few-MB PNG can otherwise claim gigabytes (docs/reliability.md). 8K video is 33 Mpx.
MAX_PIXELS_VARIABLE = "FPAR_MAX_PIXELS"
DEFAULT_MAX_PIXELS = 1 << 26


def max_pixels() -> int:
    """The pixel limit: ``$FPAR_MAX_PIXELS`` if set, else :data:`DEFAULT_MAX_PIXELS`."""
    text = os.environ.get(MAX_PIXELS_VARIABLE, "")
    try:
        return int(float(text)) if text else DEFAULT_MAX_PIXELS
    except ValueError:
        raise FparError(f"{MAX_PIXELS_VARIABLE}={text!r} is not a number of pixels") from None


def check_pixels(width: int, height: int, where: str | os.PathLike) -> None:
    """:class:`FparError` naming ``where`` if a ``width`` x ``height`` picture is over :func:`max_pixels`."""
    limit = max_pixels()
    if width * height > limit:
        raise FparError(f"{where}: a {width}x{height} picture is more than the {limit} pixels fpar decodes "
                        f"(set {MAX_PIXELS_VARIABLE} to allow more)")


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's or JPEG's header, without decoding; None for other formats."""
    if data.startswith(_PNG_MAGIC) and len(data) >= 24 and data[12:16] == b"IHDR":
        return struct.unpack(">II", data[16:24])
    if data.startswith(_JPEG_MAGIC):
        at = 2
        while at + 9 <= len(data) and data[at] == 0xFF:
            marker, length = data[at + 1], struct.unpack(">H", data[at + 2:at + 4])[0]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a start of frame
                height, width = struct.unpack(">HH", data[at + 5:at + 9])
                return width, height
            at += 2 + length
    return None


def image_problem(data: bytes) -> str | None:
    """Why ``data`` is not a complete PNG/JPEG image, or None when its ending looks complete.

    Checking the trailer is cheap and catches truncation before a decoder half-reads the file
    (some decoders return the top of a truncated image without complaint).
    """
    if not data:
        return "zero-byte file"
    if data.startswith(_PNG_MAGIC) and data[-8:-4] != b"IEND":
        return "truncated image (no PNG end chunk)"
    if data.startswith(_JPEG_MAGIC) and not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        return "truncated image (no JPEG end marker)"
    return None


def decode(data: bytes, color: bool) -> np.ndarray | None:
    """Decode image bytes to uint8 ``(H, W, 3)`` RGB or ``(H, W)`` grey; None if undecodable."""
    import cv2  # here: the CLI reads the dataset store's vocabulary without loading OpenCV

    # IMREAD_COLOR_RGB would save the conversion but needs OpenCV >= 4.11; fpar supports 4.10
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR if color else cv2.IMREAD_GRAYSCALE)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if color and image is not None else image


def read_frame(path: Path, color: bool) -> np.ndarray:
    """Read one frame, raising :class:`FparError` naming ``path`` if it is missing or broken."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise FparError(f"{path}: cannot read frame ({exc.strerror or exc})") from None
    problem = image_problem(data)
    size = None if problem else image_size(data)
    if size is not None:
        check_pixels(*size, path)
    image = None if problem else decode(data, color)
    if image is None:
        raise FparError(f"{path}: {problem or 'corrupt image (cannot decode)'}")
    return image


def quantize_flow(flow: np.ndarray, bound: float = FLOW_BOUND) -> tuple[np.ndarray, np.ndarray]:
    """dense_flow's 8-bit encoding of a flow field ``(..., 2)``: clip each component to ``±bound``
    and map linearly to 0..255. ``round(255 * (v + bound) / (2 * bound))`` puts zero motion at
    127.5, which rounds (half to even, as dense_flow's cvRound does) to 128: still pixels are 128."""
    scaled = (np.clip(flow, -bound, bound) + bound) * (255.0 / (2 * bound))
    q = np.rint(scaled).astype(np.uint8)
    return q[..., 0], q[..., 1]


def dequantize_flow(x: np.ndarray, y: np.ndarray, bound: float = FLOW_BOUND) -> np.ndarray:
    """Inverse of :func:`quantize_flow` (to within half a step, ``bound / 255`` px): float32 ``(H, W, 2)``."""
    q = np.stack([x, y], axis=-1).astype(np.float32)
    return q * (2 * bound / 255.0) - bound


@functools.lru_cache(maxsize=16)
def requantize_flow_table(bound: float) -> np.ndarray:
    """A 256-entry table taking flow levels quantised with ``bound`` px to fpar's
    (:data:`FLOW_BOUND`): level q stands for ``q / 255 * 2 * bound - bound`` px,
    re-coded by :func:`quantize_flow` with :data:`FLOW_BOUND`. The identity
    when the bounds agree. Applied to each flow image as read, before any resize or flip."""
    pixels = np.arange(256, dtype=np.float64) / 255.0 * 2.0 * bound - bound
    table, _ = quantize_flow(np.stack([pixels, pixels], axis=-1), FLOW_BOUND)
    table.flags.writeable = False
    return table


class FrameCache:
    """Decoded uint8 frames kept in memory so later epochs skip PNG decoding.

    Once ``max_bytes`` is reached nothing more is added (no eviction): every epoch reads the
    same frames in a new order, so evicting would only trade one miss for another.
    With DataLoader workers each worker fills its own copy; use ``persistent_workers=True``
    so the copies survive between epochs.
    """

    def __init__(self, max_bytes: int = 1 << 30) -> None:
        self.max_bytes = max_bytes
        self.nbytes = 0
        self._frames: dict[tuple[str, bool], np.ndarray] = {}

    def __len__(self) -> int:
        return len(self._frames)

    def read(self, path: Path, color: bool) -> np.ndarray:
        key = (str(path), color)
        image = self._frames.get(key)
        if image is None:
            image = read_frame(path, color)
            if self.nbytes + image.nbytes <= self.max_bytes:
                image.flags.writeable = False  # shared between items: nobody may modify it
                self._frames[key] = image
                self.nbytes += image.nbytes
        return image
