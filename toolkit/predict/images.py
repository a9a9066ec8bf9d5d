"""Image files to the network's input: decode with Pillow, RGB, 32x32, scaled and normalised from manifest.json.

Any size and mode Pillow reads (PNG, JPEG, BMP, WebP, ...; grey, palette, RGBA, CMYK) becomes RGB (alpha is
dropped, CMYK converted by Pillow's formula); 16-bit grey (PNG's I;16) is scaled by its real depth, 65535 ->
255, where a plain conversion would clip every pixel above 255 to white. The image is
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


def to_rgb(img):
    """An 8-bit RGB copy of a Pillow image of any mode, scaled by the mode's real bit depth."""
    from PIL import Image

    if img.mode.startswith("I;16") or img.mode == "I":  # 16-bit grey (PNG decodes to I;16, older Pillow to I)
        grey = np.asarray(img, dtype=np.float64)
        if grey.max(initial=0) > 65535 or grey.min(initial=0) < 0:
            raise DataError(f"{img.mode} image with values outside 0..65535: not a 16-bit picture; convert it to 8-bit")
        return Image.fromarray(np.rint(grey * (255 / 65535)).astype(np.uint8), "L").convert("RGB")
    if img.mode == "F":
        raise DataError("floating-point image (mode F) has no defined white level; convert it to 8-bit")
    return img.convert("RGB")


def load_image(path: Path, size: tuple[int, int]) -> torch.Tensor:
    """uint8 (3, H, W) RGB at `size` (H, W); DataError naming the file when it is not a readable image."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # Pillow warns (and decodes) above ~89 M pixels; such a file is an error here, not a raw warning.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()  # decode now: a truncated file fails here, not later
                if min(img.size) < MIN_SIDE:
                    raise DataError(
                        f"{path}: {img.size[0]}x{img.size[1]} pixels is too small to classify "
                        f"(at least {MIN_SIDE}x{MIN_SIDE})"
                    )
                rgb = to_rgb(img)
    except UnidentifiedImageError:
        raise DataError(f"{path}: not an image Pillow can read (is it really {path.suffix or 'an image'}?)") from None
    except DataError as exc:
        raise DataError(str(exc) if str(exc).startswith(str(path)) else f"{path}: {exc}") from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: too many pixels to decode safely ({exc}); downscale it first") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot decode it ({type(exc).__name__}: {exc})") from None
    h, w = size
    if rgb.size != (w, h):
        rgb = rgb.resize((w, h), Image.Resampling.BICUBIC)
    return torch.from_numpy(np.asarray(rgb, dtype=np.uint8).copy()).permute(2, 0, 1)
