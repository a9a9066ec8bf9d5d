"""What runs: `plan(run, formats, runtimes, devices)` lists every exported file x runtime x device to check or
time, and what is skipped and why. verify, bench and predict all take their targets from here, so a filter
(an uninstalled runtime, a device without the precision, a file not exported) is decided once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.core.device import available_devices
from toolkit.core.errors import ConfigError, DeviceError
from toolkit.run.folder import CHECKPOINT, MANIFEST
from toolkit.run.records import Manifest
from toolkit.targets.formats import FORMATS, Format, primary_format, runs_here, target_label, targets
from toolkit.targets.runtimes import check_runtime, runtime_class

REFERENCE = ("checkpoint", "eager", "cpu")  # what every other target is compared with


@dataclass(frozen=True)
class Target:
    format: Format
    runtime: str
    device: str
    path: Path

    @property
    def label(self) -> str:
        return target_label(self.format.name, self.runtime, self.device)

    @property
    def options(self) -> dict[str, Any]:
        """What the runtime is opened with for this file (eager's autocast dtype for checkpoint-bf16)."""
        return dict(self.format.runtime_options)

    @property
    def is_reference(self) -> bool:
        return (self.format.name, self.runtime, self.device) == REFERENCE

    def variants(self) -> list[tuple[str, dict[str, Any]]]:
        """(label, runtime options) of the settings bench --variants also times, declared by the runtime."""
        return runtime_class(self.runtime).variants(self.format.name, self.device)


@dataclass
class Plan:
    run_dir: Path
    targets: list[Target] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "skipped LABEL: why", one per reason


def plan(
    run_dir: str | Path,
    formats: Iterable[str] | None = None,
    runtimes: Iterable[str] | None = None,
    devices: Iterable[str] | None = None,
    *,
    reference: bool = False,
    timing: bool = False,
) -> Plan:
    """Every (file, runtime, device) of `run_dir` that `formats`/`runtimes`/`devices` select (None: all).

    What was named and cannot run is an error (a format or a runtime's own file not exported, a device not
    here, a runtime not installed for a device named with it); what was not named is skipped with its
    reason. `reference` keeps eager fp32 CPU in the list; `timing` drops the pairs bench does not time."""
    run_dir = Path(run_dir)
    formats, runtimes, devices = (list(v) if v else None for v in (formats, runtimes, devices))
    present = available_devices()
    for d in devices or ():
        if d not in present:
            raise DeviceError(f"device {d!r} is not available here (found: {', '.join(present)})")
    for r in runtimes or ():
        check_runtime(r)
    for f in formats or ():
        if f not in FORMATS:
            raise ConfigError(f"unknown format {f!r}; choose one of: {', '.join(FORMATS)}")
    result = Plan(run_dir)
    # A file export wrote but did not record (interrupted, or copied in by hand) was never checked: no later
    # command uses it. Without a readable manifest verify says so and judges the files on their figures.
    manifest = Manifest.read(run_dir)
    recorded = manifest.files if manifest else None

    def skip(line: str) -> None:
        if line not in result.skipped:
            result.skipped.append(line)

    for fmt_name, name in targets():
        fmt = FORMATS[fmt_name]
        if (runtimes and name not in runtimes) or (formats and fmt_name not in formats):
            continue
        path = run_dir / fmt.filename
        if not path.is_file():
            if (formats and fmt_name in formats) or (runtimes and fmt is primary_format(name)):
                raise ConfigError(
                    f"{run_dir} has no {fmt.filename}; run `toolkit export {run_dir} --format {fmt_name}` first"
                )
            continue
        if recorded is not None and fmt.filename != CHECKPOINT and fmt.filename not in recorded:
            why = f"{fmt.filename} has no entry in {MANIFEST} (its export did not finish)"
            if formats and fmt_name in formats:
                raise ConfigError(f"{run_dir}: {why}; run `toolkit export {run_dir} --format {fmt_name}`")
            skip(f"skipped {fmt.filename}: {why}")
            continue
        cls = runtime_class(name)
        for d in devices or present:
            target = Target(fmt, name, d, path)
            if d not in cls.devices or (target.is_reference and not reference):
                continue
            if why := runs_here(fmt, d):
                if formats and fmt_name in formats:  # asked for by name: say why it did not run
                    skip(f"skipped {target.label}: {why}")
                continue
            if why := cls.unavailable_reason(d):
                if devices and runtimes:  # both named explicitly: the user expects it to run
                    raise DeviceError(why)
                skip(f"skipped {name}/{d}: {why}")
                continue
            if timing and (name, d) in fmt.not_timed:
                skip(f"{target.label}: {fmt.not_timed[(name, d)]}")
                continue
            result.targets.append(target)
    return result
