"""Image helpers shared by the real-data loaders and the SynthFaces export.

Conventions: images are PIL RGB on disk and float tensors 3 x S x S in [-1, 1] in memory (StarGAN's
``Normalize(0.5, 0.5)``); masks are int64 label maps; landmarks are in pixels with pixel ``i``'s centre
at coordinate ``i`` (SynthFaces, dlib and OpenCV), so resizing by ``k`` maps ``x`` to
``(x + 0.5) * k - 0.5`` (:func:`scale_points`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

# Resampling filter of every image resize. PIL antialiases when it shrinks (the filter support grows
# with the scale factor), like torchvision's ``Resize(antialias=True)``.
RESAMPLE = Image.BILINEAR


class CorruptImageError(OSError):
    """An image file that exists but cannot be decoded (truncated, not an image, ...)."""


def open_image(path: str | Path, mode: str | None = "RGB", draft: tuple[int, int] | None = None) -> Image.Image:
    """Open and fully decode an image, converted to ``mode`` (None: keep the file's mode).

    ``draft`` lets libjpeg decode a JPEG at a reduced scale that is still at least that size (a fast
    first step of a large downscale). Raises ``FileNotFoundError`` or ``CorruptImageError`` naming the file.
    Note: truncated files are only detected while ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` is False
    (PIL's default).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        with Image.open(path) as img:
            if draft is not None and img.format == "JPEG":
                img.draft(mode, draft)
            img.load()
            return img.copy() if mode is None or img.mode == mode else img.convert(mode)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise CorruptImageError(f"cannot decode image {path}: {err}") from err


def center_crop_box(width: int, height: int, crop: int) -> tuple[int, int, int, int]:
    """``(left, top, right, bottom)`` of a centred ``crop`` x ``crop`` square (torchvision rounding)."""
    if crop > width or crop > height:
        raise ValueError(f"crop {crop} does not fit in a {width} x {height} image")
    left, top = int(round((width - crop) / 2.0)), int(round((height - crop) / 2.0))
    return left, top, left + crop, top + crop


def crop_resize(img: Image.Image, box: tuple[int, int, int, int] | None, size: int) -> Image.Image:
    """Crop ``box`` (PIL order; parts outside the image are black) and resize to ``size`` x ``size``."""
    if box is not None:
        img = img.crop(box)
    if img.size != (size, size):
        img = img.resize((size, size), RESAMPLE)
    return img


def to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL RGB image -> float tensor 3 x H x W in [-1, 1]."""
    arr = np.asarray(img, dtype=np.float32)
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous().div_(127.5).sub_(1.0)


def to_pil(image: torch.Tensor) -> Image.Image:
    """Float tensor 3 x H x W in [-1, 1] -> PIL RGB image (rounded to 8 bits)."""
    arr = ((image.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().byte()
    return Image.fromarray(arr.permute(1, 2, 0).numpy(), "RGB")


def scale_points(points, k: float):
    """Landmarks of an image resized by ``k`` (pixel centres at integer coordinates)."""
    return (points + 0.5) * k - 0.5


def resize_mask(mask: np.ndarray | torch.Tensor, size: int) -> torch.Tensor:
    """Label map (H x W, values < 256) -> int64 tensor ``size`` x ``size``, nearest neighbour."""
    arr = np.asarray(mask, dtype=np.uint8)
    if arr.shape != (size, size):
        arr = np.asarray(Image.fromarray(arr, "L").resize((size, size), Image.NEAREST))
    return torch.from_numpy(arr.astype(np.int64))


def paste_with_edge(face: Image.Image, canvas_size: tuple[int, int], left: int, top: int) -> Image.Image:
    """Place ``face`` at (left, top) on a ``canvas_size`` (w, h) canvas filled by edge replication."""
    w, h = canvas_size
    fw, fh = face.size
    if left < 0 or top < 0 or left + fw > w or top + fh > h:
        raise ValueError(f"a {fw} x {fh} face at ({left}, {top}) does not fit a {w} x {h} canvas")
    arr = np.asarray(face)
    pad = ((top, h - top - fh), (left, w - left - fw), (0, 0))
    return Image.fromarray(np.pad(arr, pad, mode="edge"), "RGB")
