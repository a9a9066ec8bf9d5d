"""Image files to uint8 RGB tensors at the network's input size: one decoder for training data and predict.

Any size and mode Pillow reads (PNG, JPEG, BMP, WebP, ...; grey, palette, RGBA, CMYK) becomes RGB (alpha is
dropped, CMYK converted by Pillow's formula); 16-bit grey (PNG's I;16) is scaled by its real depth, 65535 ->
255, where a plain conversion would clip every pixel above 255 to white. Two resize policies, recorded in the
checkpoint and manifest so predict repeats what training did:
- "stretch" (CIFAR's): bicubic to the input size, aspect ratio not kept, as CIFAR's own images were made;
- "center-crop" (image folders): the shorter side bicubic to the input size (antialiased when shrinking), then
  the centre square, as torchvision's Resize + CenterCrop.
An image already at the input size is not touched: a CIFAR image saved as a 32x32 PNG comes back bit-exact.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from toolkit.core.errors import DataError, first_line

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff")
MIN_SIDE = 8  # below this an image holds too little to resize into a meaningful input
RESIZE_POLICIES = ("stretch", "center-crop")


def to_rgb(img):
    """An 8-bit RGB copy of a Pillow image of any mode, scaled by the mode's real bit depth."""
    return to_rgb_noted(img)[0]


def to_rgb_noted(img):
    """(8-bit RGB copy, what was converted or None): 16-bit and CMYK files are worth telling the user about."""
    from PIL import Image

    if img.mode.startswith("I;16") or img.mode == "I":  # 16-bit grey (PNG decodes to I;16, older Pillow to I)
        grey = np.asarray(img, dtype=np.float64)
        if grey.max(initial=0) > 65535 or grey.min(initial=0) < 0:
            raise DataError(f"{img.mode} image with values outside 0..65535: not a 16-bit picture; convert it to 8-bit")
        rgb = Image.fromarray(np.rint(grey * (255 / 65535)).astype(np.uint8), "L").convert("RGB")
        return rgb, "16-bit grey, scaled to 8 bits"
    if img.mode == "F":
        raise DataError("floating-point image (mode F) has no defined white level; convert it to 8-bit")
    return img.convert("RGB"), (
        "CMYK, converted to RGB by Pillow's formula (no colour profile)" if img.mode == "CMYK" else None
    )


def load_image(path: Path, size: tuple[int, int], resize: str = "stretch") -> torch.Tensor:
    """uint8 (3, H, W) RGB at `size` (H, W); DataError naming the file when it is not a readable image."""
    return torch.from_numpy(load_array(path, size, resize)[0]).permute(2, 0, 1)


def load_array(path: Path, size: tuple[int, int], resize: str = "stretch") -> tuple[np.ndarray, str | None]:
    """(uint8 (H, W, 3) RGB at `size`, what was converted or None); DataError naming the file."""
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
                rgb, note = to_rgb_noted(img)
    except UnidentifiedImageError:
        raise DataError(f"{path}: not an image Pillow can read (is it really {path.suffix or 'an image'}?)") from None
    except DataError as exc:
        raise DataError(str(exc) if str(exc).startswith(str(path)) else f"{path}: {exc}") from None
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: too many pixels to decode safely ({exc}); downscale it first") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot decode it ({type(exc).__name__}: {first_line(exc)})") from None
    h, w = size
    if rgb.size != (w, h):
        if resize == "center-crop":
            scale = max(h / rgb.height, w / rgb.width)  # the shorter side (relative to the target) fits
            sw, sh = max(w, round(rgb.width * scale)), max(h, round(rgb.height * scale))
            rgb = rgb.resize((sw, sh), Image.Resampling.BICUBIC)
            left, top = (sw - w) // 2, (sh - h) // 2
            rgb = rgb.crop((left, top, left + w, top + h))
        else:
            rgb = rgb.resize((w, h), Image.Resampling.BICUBIC)
    return np.asarray(rgb, dtype=np.uint8).copy(), note
