"""The speed policy: the memory format, autocast precision and compilation a run trains with.

A switch the user sets is used as given. One left at auto is decided on this machine, as cuDNN's benchmark
mode decides its kernels: a few steps of the real TrainStep for each candidate (speed_probe.py), interleaved
so that a change in the machine's load hits every candidate alike; the fastest median step wins. Low
precision is a candidate only where the recipe allows it (Recipe.amp_allowed) and the device computes it
natively; torch.compile is timed only when the run is long enough to repay compiling, and chosen only when
the steps it saves outweigh its compile time. Timings are cached per machine, model, data set, batch size,
threads and torch version, so the next run with that key decides without timing; a resumed run keeps the
choice its checkpoint records. A run too short to repay the timing takes the best prior the machine has,
never simply the slowest candidate: the decision cached for the same model at the nearest other batch size
or data set, else the layout known to win for conv nets (channels_last on CPU and CUDA: airbench94's own
code trains channels_last, and ours at contiguous ran at 0.84x it on an AVX2 EPYC); precision stays fp32
unless given, and nothing is compiled untimed.

Compiling is judged from compiled and eager steps timed in alternation, as the eager candidates are: a
busy machine once timed eager at 5.66 s a step and, minutes later, compiled at 0.61 s, and cached "compiling
saves 7,899 s" for every later run. Rounds whose compiled/eager ratios disagree by more than NOISE_SPREAD
decide nothing and are not cached; the run says so and stays eager.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from toolkit.core.device import native_half_precisions
from toolkit.core.errors import ToolkitError
from toolkit.core.files import write_json
from toolkit.core.machine import cpu_model
from toolkit.train.config import AUTO, TrainConfig
from toolkit.train.precision import compile_unavailable_reason

PROBE_WARMUP = 1  # untimed steps per candidate: kernel selection, allocator growth
PROBE_STEPS = 3  # timed steps per candidate; the median counts
DECIDE_MIN_RATIO = 4  # time the candidates only when the run has at least this many times the probe's steps
COMPILE_MIN_SECONDS = 300.0  # below this projected training time, compiling is not even timed
CACHE_VERSION = 1
COMPILE_ROUNDS = 5  # alternating eager and compiled steps timed after the compiling one
NOISE_SPREAD = 1.5  # largest/smallest compiled-to-eager ratio over those rounds that still counts as one answer
PRIOR_KEY_FIELDS = ("dataset", "image_size", "batch_size")  # what a prior from the cache may differ in


@dataclass(frozen=True)
class Choice:
    """One combination of the three switches."""

    amp: str = "off"
    channels_last: bool = False
    compile: bool = False

    @property
    def label(self) -> str:
        precision = "fp32" if self.amp == "off" else self.amp
        layout = "channels_last" if self.channels_last else "contiguous"
        return f"{precision}, {layout}, {'compiled' if self.compile else 'eager'}"


# choices -> median seconds per step of each (a candidate that failed to run is left out, with a reason)
StepTimer = Callable[[list[Choice]], tuple[dict[Choice, float], dict[Choice, str]]]


@dataclass(frozen=True)
class CompileTiming:
    """Compiled and eager steps of one choice, timed in alternation (the first compiled step compiles)."""

    step_s: float  # median compiled step
    compile_s: float  # the first compiled step less a compiled step
    eager_step_s: float  # median eager step, timed between the compiled ones
    ratios: tuple[float, ...]  # compiled / eager, round by round

    @property
    def spread(self) -> float:
        return max(self.ratios) / min(self.ratios) if self.ratios and min(self.ratios) > 0 else float("inf")


CompileTimer = Callable[[Choice], CompileTiming]


@dataclass
class SpeedDecision:
    """What the run trains with, and how that was decided: what summary.json and the checkpoint record."""

    choice: Choice
    how: str  # given | timed | cached | resumed | prior (an untimed run's best guess)
    asked: dict  # the switches as the user left them ("auto" or a value)
    step_seconds: dict[str, float] = field(default_factory=dict)  # candidate label -> median s/step
    compile: dict | None = None  # {"step_s", "compile_s", "eager_step_s"} when compiling was timed
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0  # spent deciding (timing and compiling the candidates)

    def to_dict(self) -> dict:
        return {
            "choice": asdict(self.choice),
            "how": self.how,
            "asked": self.asked,
            "step_seconds": self.step_seconds,
            "compile": self.compile,
            "notes": self.notes,
            "decide_seconds": self.seconds,
        }

    def line(self) -> str:
        """The run's first-line account: the choice, how it was made, at what cost."""
        how = {
            "given": "as given",
            "timed": f"fastest of {len(self.step_seconds)} timed on this machine in {self.seconds:.1f} s",
            "cached": "cached decision for this machine",
            "resumed": "as recorded in the checkpoint",
            "prior": "not timed",
        }[self.how]
        return f"{self.choice.label} ({how})" + "".join(f"; {n}" for n in self.notes)


def cache_dir() -> Path:
    """$TOOLKIT_CACHE_DIR, else $XDG_CACHE_HOME/toolkit, else ~/.cache/toolkit."""
    given = os.environ.get("TOOLKIT_CACHE_DIR")
    if given:
        return Path(given)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "toolkit"


def cache_key(cfg: TrainConfig, device: torch.device, candidates: list[Choice], world_size: int = 1) -> dict:
    """Everything a step time depends on: the machine, the model and its input, the batch, the software."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()
    return {
        "version": CACHE_VERSION,
        "device": f"{device.type}: {name}",
        "model": cfg.model,
        "model_args": cfg.model_args or {},
        "dataset": cfg.dataset,
        "image_size": cfg.image_size,
        "batch_size": cfg.batch_size,
        "world_size": world_size,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "candidates": [c.label for c in candidates],
    }


def cache_path(key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    return cache_dir() / "speed" / f"{digest}.json"


def read_cache(key: dict) -> dict | None:
    """The cached entry for `key`; None when absent, unreadable or another key's (a hash collision)."""
    try:
        entry = json.loads(cache_path(key).read_text())
    except (OSError, ValueError):
        return None
    return entry if isinstance(entry, dict) and entry.get("key") == key else None


def write_cache(key: dict, entry: dict) -> None:
    """Atomically (temp file, then rename); a cache that cannot be written only costs the next run a re-timing."""
    path = cache_path(key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, {**entry, "key": key, "written": time.strftime("%Y-%m-%dT%H:%M:%S")})
    except (OSError, ToolkitError):
        pass


def asked(cfg: TrainConfig) -> dict:
    return {
        "amp": cfg.amp,
        "channels_last": AUTO if cfg.channels_last is None else cfg.channels_last,
        "compile": AUTO if cfg.compile is None else cfg.compile,
    }


def candidates(cfg: TrainConfig, device: torch.device) -> list[Choice]:
    """The eager combinations to time: each auto switch's options, low precision only where allowed and native."""
    if cfg.amp != AUTO:
        amps = [cfg.amp]
    else:
        native = native_half_precisions(str(device.type))
        amps = ["off", *(p for p in (cfg.amp_allowed or ()) if p in native)]
    layouts = [cfg.channels_last] if cfg.channels_last is not None else [False, True]
    compiled = bool(cfg.compile)  # auto compiles only after the eager candidates (decide_compile)
    return [Choice(a, cl, compiled) for a in amps for cl in layouts]


def decide(
    cfg: TrainConfig,
    device: torch.device,
    steps: int,
    time_steps: StepTimer,
    time_compiled: CompileTimer,
    world_size: int = 1,
) -> SpeedDecision:
    """The switches for a run of `steps` optimizer steps; `cfg` holds "auto"/None where the policy decides."""
    wanted = asked(cfg)
    options = candidates(cfg, device)
    if cfg.speed_decided:
        return SpeedDecision(options[0], "given", wanted)
    key = cache_key(cfg, device, options, world_size)
    entry = read_cache(key) or {}
    timings: dict[str, float] = entry.get("step_seconds") or {}
    notes: list[str] = []
    started = time.perf_counter()
    how = "cached"
    # One candidate left (memory format and precision given) is still timed: compile's decision needs its step.
    if not all(c.label in timings for c in options):
        probe_steps = len(options) * (PROBE_WARMUP + PROBE_STEPS)
        if steps < DECIDE_MIN_RATIO * probe_steps:
            notes.append(f"a run of {steps} steps is too short to repay timing {len(options)} candidates")
            return _prior(cfg, device, options, key, wanted, notes)
        measured, failed = time_steps(options)
        timings = {c.label: s for c, s in measured.items()}
        notes += [f"{c.label} failed: {why}" for c, why in failed.items()]
        if not timings:
            return _prior(cfg, device, options, key, wanted, notes)
        entry = {"step_seconds": timings, "timing_seconds": time.perf_counter() - started}
        write_cache(key, entry)
        how = "timed"
    best = min((c for c in options if c.label in timings), key=lambda c: timings[c.label])
    compile_record = None
    if cfg.compile is None:
        best, compile_record, note = _decide_compile(best, timings.get(best.label), steps, key, entry, time_compiled)
        if note:
            notes.append(note)
    return SpeedDecision(best, how, wanted, timings, compile_record, notes, seconds=time.perf_counter() - started)


def _prior(
    cfg: TrainConfig, device: torch.device, options: list[Choice], key: dict, wanted: dict, notes: list[str]
) -> SpeedDecision:
    """An untimed run's choice: the fastest of `options` in the cached timings of the same model, machine,
    threads and software at the nearest batch size (or another data set), else the family's known winner."""
    near = _nearest_cached(key)
    if near is not None:
        timed = {c: near["step_seconds"][c.label] for c in options if c.label in near["step_seconds"]}
        if timed:
            best = min(timed, key=timed.get)
            notes.append(f"from the timings cached for batch {near['key']['batch_size']} on {near['key']['dataset']}")
            return SpeedDecision(replace(best, compile=bool(cfg.compile)), "prior", wanted, notes=notes)
    layouts = {c.channels_last for c in options}
    channels_last = True in layouts and device.type in ("cpu", "cuda")
    precision = cfg.amp if cfg.amp != AUTO else "off"  # numerics change only where timing showed it pays
    if channels_last and len(layouts) > 1:
        notes.append(f"channels_last: the layout that wins for conv nets on {device.type}")
    return SpeedDecision(Choice(precision, channels_last, bool(cfg.compile)), "prior", wanted, notes=notes)


def _nearest_cached(key: dict) -> dict | None:
    """The cache entry for `key` but for the data set, image size or batch size: the nearest batch size."""
    fixed = {k: v for k, v in key.items() if k not in PRIOR_KEY_FIELDS}
    found = []
    for path in (cache_dir() / "speed").glob("*.json"):
        try:
            entry = json.loads(path.read_text())
            other = entry["key"]
            if {k: v for k, v in other.items() if k not in PRIOR_KEY_FIELDS} == fixed and entry["step_seconds"]:
                distance = abs(math.log(max(1, other["batch_size"] or 1) / max(1, key["batch_size"] or 1)))
                found.append((distance, other["dataset"] != key["dataset"], -path.stat().st_mtime, entry))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue  # another version's entry, or one being written
    return min(found, key=lambda f: f[:3])[3] if found else None


def _decide_compile(
    best: Choice, eager_s: float | None, steps: int, key: dict, entry: dict, time_compiled: CompileTimer
) -> tuple[Choice, dict | None, str | None]:
    """Compile `best` when the time its steps save over the run exceeds what compiling costs."""
    why_not = compile_unavailable_reason()
    if why_not is not None:
        return best, None, f"not compiled: {why_not}"
    if eager_s is None:
        return best, None, None
    projected = steps * eager_s
    record = (entry.get("compile") or {}).get(best.label)
    if record is None:
        if projected < COMPILE_MIN_SECONDS:
            return (
                best,
                None,
                (
                    f"not compiled: ~{projected:.0f} s of training is too short to repay compiling "
                    f"(timed from {COMPILE_MIN_SECONDS:.0f} s)"
                ),
            )
        try:
            timing = time_compiled(best)
        except Exception as exc:  # a compiler failure is a reason not to compile, not a failed run
            return best, None, f"not compiled: compiling failed ({type(exc).__name__})"
        record = {
            "step_s": timing.step_s,
            "compile_s": timing.compile_s,
            "eager_step_s": timing.eager_step_s,
            "ratios": list(timing.ratios),
        }
        if timing.spread > NOISE_SPREAD:  # the machine's load changed under the rounds: no answer to keep
            return (
                best,
                record,
                (
                    f"not compiled: compiled/eager step ratios disagreed across rounds "
                    f"({min(timing.ratios):.2f} to {max(timing.ratios):.2f}; a busy machine?), not cached"
                ),
            )
        entry.setdefault("compile", {})[best.label] = record
        write_cache(key, entry)
    eager_s = record["eager_step_s"]  # timed beside the compiled steps, not minutes before them
    saved = steps * (eager_s - record["step_s"])
    if saved > record["compile_s"]:
        return (
            replace(best, compile=True),
            record,
            (f"compiled: saves ~{saved:.0f} s over {steps} steps for ~{record['compile_s']:.0f} s of compiling"),
        )
    if record["step_s"] >= eager_s:
        return (
            best,
            record,
            (f"not compiled: compiled steps were slower ({record['step_s']:.3g} vs {eager_s:.3g} s eager)"),
        )
    return (
        best,
        record,
        (
            f"not compiled: it would save ~{saved:.0f} s over {steps} steps and cost "
            f"~{record['compile_s']:.0f} s to compile"
        ),
    )


def apply(cfg: TrainConfig, decision: SpeedDecision) -> TrainConfig:
    """`cfg` with the decided switches in place of "auto": what the run trains with and its checkpoint records."""
    c = decision.choice
    return replace(cfg, amp=c.amp, channels_last=c.channels_last, compile=c.compile)
