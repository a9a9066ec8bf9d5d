"""Your own images: torchvision's ImageFolder layout (DIR/train/CLASS/*, DIR/test/CLASS/*, optional DIR/val/).

Classes are the train folder's sub-folder names, sorted (torchvision's order); test and val must hold the same
ones. Every file is decoded once, by `decode.load_array` (the decoder predict uses), to `image_size` with the
"center-crop" policy, into one uint8 tensor that lives on the training device like CIFAR's (loader.py). Files
Pillow cannot read (corrupt, empty, truncated, not an image) are listed by name: `on_bad_image="fail"` stops
with the list, "skip" leaves them out and records them. 16-bit and CMYK files are decoded (scaled, converted)
and counted. Large sets decode in worker processes; nothing is written to the data folder.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from toolkit.core.errors import DataError
from toolkit.data.decode import load_array
from toolkit.data.imageset import ImageSet, default_data_dir

SPLITS = ("train", "val", "test")
BAD_IMAGE_POLICIES = ("fail", "skip")
RESIZE = "center-crop"
CHUNK = 256  # files per worker task
PARALLEL_FROM = 2000  # fewer files decode faster in this process than worker start-up costs
MEMORY_SHARE = 0.5  # decode into memory while the set takes at most this share of the available memory


def split_folder(root: str | os.PathLike, split: str) -> Path | None:
    folder = Path(root) / split
    return folder if folder.is_dir() else None


def scan(root: str | os.PathLike, split: str, classes: tuple[str, ...] | None = None) -> tuple[list, tuple]:
    """([(file, label)], classes) of one split; one-line DataErrors for a layout that cannot train."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"--data-dir {root}: no such folder; an image folder holds train/CLASS/* and test/CLASS/*")
    folder = root / split
    if not folder.is_dir():
        present = sorted(p.name for p in root.iterdir() if p.is_dir())
        raise DataError(
            f"{root}: no {split}/ folder (it has: {', '.join(present) or 'no folders'}); an image folder holds "
            f"train/CLASS/*, test/CLASS/* and optionally val/CLASS/*"
        )
    found = tuple(sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")))
    if not found:
        raise DataError(f"{folder}: no class folders; put each class's images in {folder}/CLASS_NAME/")
    if classes is None:
        if len(found) < 2:
            raise DataError(f"{folder}: only one class ({found[0]}); a classifier needs at least two class folders")
        classes = found
    elif found != classes:
        missing, extra = sorted(set(classes) - set(found)), sorted(set(found) - set(classes))
        raise DataError(
            f"{folder}: its classes differ from train/'s"
            + (f"; missing: {', '.join(missing)}" if missing else "")
            + (f"; not in train/: {', '.join(extra)}" if extra else "")
            + "; every split needs the same class folders"
        )
    files = []
    for label, name in enumerate(classes):
        own = sorted(f for f in (folder / name).rglob("*") if f.is_file() and not f.name.startswith("."))
        if not own:
            raise DataError(f"{folder / name}: no files; every class folder needs at least one image")
        files += [(f, label) for f in own]
    return files, classes


def native_size(files: list, sample: int = 32) -> int:
    """The side of a sample of the images when they are all one square size; else a DataError asking for it."""
    from PIL import Image

    sizes = Counter()
    step = max(1, len(files) // sample)
    for f, _ in files[::step][:sample]:
        try:
            with Image.open(f) as img:
                sizes[img.size] += 1
        except Exception:  # a bad file is reported when it is decoded
            continue
    if len(sizes) == 1 and (size := next(iter(sizes)))[0] == size[1]:
        return size[0]
    shown = ", ".join(f"{w}x{h}" for (w, h), _ in sizes.most_common(3)) or "none readable"
    raise DataError(f"the images differ in size ({shown}, ...); pass --image-size N to resize them to NxN")


def _decode_chunk(files: list[str], size: int) -> tuple[np.ndarray, list[tuple[int, str]], list[tuple[int, str]]]:
    """Worker: (uint8 (k, H, W, 3), [(index, why bad)], [(index, what was converted)])."""
    out = np.zeros((len(files), size, size, 3), dtype=np.uint8)
    bad, converted = [], []
    for i, f in enumerate(files):
        try:
            out[i], note = load_array(Path(f), (size, size), RESIZE)
        except DataError as exc:
            bad.append((i, str(exc)))
            continue
        if note:
            converted.append((i, note))
    return out, bad, converted


def _scan_chunk(files: list[str], size: int) -> tuple[np.ndarray, list, list]:
    """Worker, for a streamed set: the files checked and their per-channel sums; the pixels are dropped."""
    pixels, bad, converted = _decode_chunk(files, size)
    x = pixels.astype(np.float64) / 255
    sums = np.stack([x.sum(axis=(1, 2)), (x * x).sum(axis=(1, 2))], axis=1)  # (k, 2, 3)
    return sums, bad, converted


def _workers(files: int, chunks: int) -> int:
    # Forked workers decode with Pillow and numpy only (no torch op, so no OpenMP pool to inherit) and start in
    # milliseconds; spawn would re-import torch in each and cannot start from a script read on stdin.
    parallel = files >= PARALLEL_FROM and sys.platform == "linux"
    return min(os.cpu_count() or 1, chunks) if parallel else 1


def _map(work, chunks: list, size: int, workers: int, progress=None, total: int = 0) -> list:
    """`work(chunk, size)` over the chunks, in forked workers when there are several; progress every ~20 %."""
    if workers <= 1:
        return [work(c, size) for c in chunks]
    import multiprocessing

    results, step = [], max(1, len(chunks) // 5)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        for k, r in enumerate(pool.map(work, chunks, [size] * len(chunks))):
            results.append(r)
            if progress and (k + 1) % step == 0 and k + 1 < len(chunks):
                progress(f"  {min((k + 1) * CHUNK, total):,} of {total:,} images decoded")
    return results


class FileImages:
    """A streamed image set: a (N, 3, S, S) uint8 stand-in whose rows are decoded from their files when read.

    Slicing or indexing gives another FileImages (a lazy subset); `decode()` reads its files, in forked
    workers when there are many. The loader (loader.py) decodes each batch when it reaches it, so one batch of
    pixels is in memory at a time. `sums`: each channel's sum and sum of squares, from the checking pass.
    """

    def __init__(self, paths: list[str], size: int, workers: int = 1, sums: np.ndarray | None = None):
        self.paths, self.size, self.workers, self.sums = list(paths), size, workers, sums

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.paths), 3, self.size, self.size))

    def __len__(self) -> int:
        return len(self.paths)

    def to(self, device) -> FileImages:  # stays on disk; each decoded batch goes to the loader's device
        return self

    def __getitem__(self, index) -> FileImages:
        if isinstance(index, slice):
            return FileImages(self.paths[index], self.size, self.workers)
        rows = torch.as_tensor(index).reshape(-1).tolist()
        return FileImages([self.paths[i] for i in rows], self.size, self.workers)

    def decode(self) -> torch.Tensor:
        # A training batch is split over the workers (a fork costs ~10 ms; 64 files take longer to decode).
        parts = self.workers if len(self.paths) >= 64 else 1
        step = -(-len(self.paths) // parts) if self.paths else 1
        chunks = [self.paths[i : i + step] for i in range(0, len(self.paths), step)]
        results = _map(_decode_chunk, chunks, self.size, min(parts, len(chunks)))
        for _, bad, _ in results:
            if bad:  # the checking pass read this file: it changed since
                raise DataError(f"{bad[0][1]} (it was readable when the run started)")
        pixels = np.concatenate([r[0] for r in results]) if results else np.zeros((0, self.size, self.size, 3))
        return torch.from_numpy(pixels.astype(np.uint8)).permute(0, 3, 1, 2).contiguous()


def available_memory() -> int:
    """Bytes the kernel says a new allocation can take (MemAvailable), else physical memory."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def read_split(
    root: str | os.PathLike,
    split: str,
    image_size: int | None,
    *,
    classes: tuple[str, ...] | None = None,
    on_bad_image: str = "fail",
    limit: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> ImageSet:
    """One split decoded into memory, or streamed from its files when it would take more than MEMORY_SHARE of the
    available memory decoded; `info` records the folder, sizes, skipped and converted files."""
    if on_bad_image not in BAD_IMAGE_POLICIES:
        raise DataError(f"unknown --on-bad-image {on_bad_image!r}; choose one of: {', '.join(BAD_IMAGE_POLICIES)}")
    files, classes = scan(root, split, classes)
    if limit is not None and limit < len(files):
        # Spread over the classes (the files are sorted by class): a fixed, seed-free subset.
        keep = np.linspace(0, len(files) - 1, limit).round().astype(int)
        files = [files[i] for i in sorted(set(keep.tolist()))]
    size = image_size or native_size(files)
    needed = len(files) * 3 * size * size
    streamed = needed > MEMORY_SHARE * available_memory()
    paths = [str(f) for f, _ in files]
    chunks = [paths[i : i + CHUNK] for i in range(0, len(paths), CHUNK)]
    workers = _workers(len(paths), len(chunks))
    if progress:
        where = (
            f"streamed from disk: {needed / 2**30:.1f} GiB decoded is more than half of the "
            f"{available_memory() / 2**30:.1f} GiB available; a first pass checks every file and computes mean/std"
            if streamed
            else f"{needed / 2**20:,.0f} MiB in memory"
        )
        progress(
            f"decoding {len(paths):,} images of {Path(root) / split} to {size}x{size} ({where}, {workers} process(es))"
        )
    results = _map(_scan_chunk if streamed else _decode_chunk, chunks, size, workers, progress, len(paths))
    arrays, bad, converted = [], [], []
    for k, (arr, b, c) in enumerate(results):
        arrays.append(arr)  # pixels, or (streamed) per-image channel sums
        bad += [(k * CHUNK + i, why) for i, why in b]
        converted += [(k * CHUNK + i, what) for i, what in c]
    if bad and on_bad_image == "fail":
        listed = "; ".join(why for _, why in bad[:5]) + (f"; ... ({len(bad) - 5} more)" if len(bad) > 5 else "")
        raise DataError(
            f"{len(bad)} of {len(paths):,} files in {Path(root) / split} are not readable images: {listed}; "
            f"remove them, or pass --on-bad-image skip to train without them"
        )
    keep = np.ones(len(paths), dtype=bool)
    keep[[i for i, _ in bad]] = False
    if not keep.any():
        raise DataError(f"{Path(root) / split}: none of its {len(paths)} files is a readable image")
    if streamed:
        sums = np.concatenate(arrays)[keep].sum(axis=0)  # (2, 3): per channel, sum and sum of squares of x / 255
        images = FileImages([p for p, k in zip(paths, keep, strict=True) if k], size, workers, sums)
    else:
        images = torch.from_numpy(np.concatenate(arrays)[keep]).permute(0, 3, 1, 2).contiguous()
    labels = torch.tensor([label for (_, label), k in zip(files, keep, strict=True) if k], dtype=torch.int64)
    info = {
        "dataset": "imagefolder",
        "folder": str(Path(root).resolve()),
        "split": split,
        "files": len(paths),
        "images": int(keep.sum()),
        "image_size": size,
        "resize": RESIZE,
        "memory_bytes": 0 if streamed else int(images.numel()),
        "streamed": streamed,
        "skipped": [why for _, why in bad],
        "converted": [f"{paths[i]}: {what}" for i, what in converted],
        "official": False,
        "note": f"image folder {Path(root).resolve()} ({split}: {int(keep.sum()):,} images, {len(classes)} classes, "
        f"{RESIZE} to {size}x{size}" + (f", {len(bad)} unreadable skipped" if bad else "") + ")",
    }
    return ImageSet("imagefolder", images, labels, classes, info)


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images (N, C, H, W) in [0, 1] units, in float64 chunks."""
    if isinstance(images, FileImages):  # a streamed set: from the checking pass's sums
        count = len(images) * images.size * images.size
        mean = images.sums[0] / count
        std = np.sqrt(np.maximum(images.sums[1] / count - mean * mean, 0)).clip(1 / 255)
        return tuple(round(float(v), 6) for v in mean), tuple(round(float(v), 6) for v in std)
    c = images.shape[1]
    total = torch.zeros(c, dtype=torch.float64)
    squares = torch.zeros(c, dtype=torch.float64)
    for start in range(0, images.shape[0], 4096):
        x = images[start : start + 4096].to(torch.float64) / 255
        total += x.sum(dim=(0, 2, 3))
        squares += (x * x).sum(dim=(0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / count
    # A constant channel (grey images) would divide by zero: one grey level is the floor.
    std = (squares / count - mean * mean).clamp_min(0).sqrt().clamp_min(1 / 255)
    return tuple(round(v, 6) for v in mean.tolist()), tuple(round(v, 6) for v in std.tolist())


def write_split(data: ImageSet, root: str | os.PathLike, split: str) -> Path:
    """Write `data` as PNGs into ROOT/SPLIT/CLASS/NNNNN.png (lossless: the images read back bit-exact)."""
    from PIL import Image

    folder = Path(root) / split
    for name in data.classes:
        (folder / name).mkdir(parents=True, exist_ok=True)
    pixels = data.images.permute(0, 2, 3, 1).numpy()
    for i, label in enumerate(data.labels.tolist()):
        Image.fromarray(pixels[i]).save(folder / data.classes[label] / f"{i:05d}.png")
    return folder


def load(
    name: str, train: bool, data_dir=None, *, limit, image_size, classes, on_bad_image, progress, split, **_
) -> ImageSet:
    """The registry's reader: a split of the image folder `data_dir` (default: $TOOLKIT_DATA or ./data)."""
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    split = split or ("train" if train else "test")
    return read_split(root, split, image_size, classes=classes, on_bad_image=on_bad_image, limit=limit,
                      progress=progress)  # fmt: skip
