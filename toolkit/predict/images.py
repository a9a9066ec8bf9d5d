"""Image files to the network's input: decode with Pillow, RGB, 32x32, scaled and normalised from manifest.json.

Any size and mode Pillow reads (PNG, JPEG, BMP, WebP, ...; grey, palette, RGBA) becomes RGB; the image is
resized to the network's input size with Pillow's bicubic filter (antialiased when shrinking), the aspect
ratio not kept, as CIFAR's own images were made. A CIFAR image saved as a 32x32 PNG comes back bit-exact,
and toolkit.data.normalise turns it into the same input training and verify give the network.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from toolkit.core.errors import DataError

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff")
MIN_SIDE = 8  # below this an image holds too little to resize into a meaningful 32x32 input


def expand(paths: list[str | Path]) -> tuple[list[Path], list[str]]:
    """Files to classify (folders expanded to their image files, sorted) and one-line problems."""
    files, problems = [], []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in SUFFIXES)
            if not found:
                problems.append(f"{p}: no image files ({', '.join(SUFFIXES)}) in this folder")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            problems.append(f"{p}: no such file or folder")
    return files, problems


def load_image(path: Path, size: tuple[int, int]) -> torch.Tensor:
    """uint8 (3, H, W) RGB at `size` (H, W); DataError naming the file when it is not a readable image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()  # decode now: a truncated file fails here, not later
            if min(img.size) < MIN_SIDE:
                raise DataError(
                    f"{path}: {img.size[0]}x{img.size[1]} pixels is too small to classify "
                    f"(at least {MIN_SIDE}x{MIN_SIDE})"
                )
            rgb = img.convert("RGB")
    except UnidentifiedImageError:
        raise DataError(f"{path}: not an image Pillow can read (is it really {path.suffix or 'an image'}?)") from None
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: cannot decode it ({type(exc).__name__}: {exc})") from None
    h, w = size
    if rgb.size != (w, h):
        rgb = rgb.resize((w, h), Image.Resampling.BICUBIC)
    return torch.from_numpy(np.asarray(rgb, dtype=np.uint8).copy()).permute(2, 0, 1)
