"""The files predict classifies: folders expanded to their image files; decoding is toolkit.data.decode's."""

from __future__ import annotations

from pathlib import Path

from toolkit.data.decode import SUFFIXES


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
