"""Training configuration: a frozen dataclass whose unset fields come from the model's registry recipe."""

from __future__ import annotations

import difflib
import json
import math
import secrets
import sys
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from toolkit.core.errors import ConfigError, first_line
from toolkit.run.folder import DEFAULT_ROOT, check_folder_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib
# The data and model registries (and torch behind them) load inside the methods that check against them: the
# command line builds `toolkit train`'s options from this class, and its help must not wait for torch.

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "multistep", "cosine", "onecycle", "warmup-linear")
PAD_MODES = ("zeros", "reflect")
FLIPS = ("random", "alternate")
TTA_POLICIES = ("none", "mirror", "mirror-translate")
AMP_MODES = ("off", "bf16", "fp16")
AUTO = "auto"  # a speed switch left to the speed policy (speed.py)
SPEED_SWITCHES = ("amp", "channels_last", "compile")  # the TrainConfig fields the policy may decide


def option(default: Any, help: str) -> Any:
    """A field `toolkit train` offers as --NAME (a bool as --NAME/--no-NAME), `help` its one help text: the
    option is declared here, once, and the command line is built from it (cli.py, train_option)."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class TrainConfig:
    model: str = option(
        "tutorial-cnn", "Registry model or plugin (see `toolkit models`), or any package.module:factory [tutorial-cnn]."
    )
    model_args: dict[str, Any] | None = None  # a factory's keyword arguments (--model-arg key=value)
    dataset: str = option("cifar10", "cifar10 | cifar100 | synthetic | imagefolder [cifar10].")
    data_dir: str | None = option(
        None,
        "Folder holding cifar-10-batches-py/, or an image folder's train/ test/ "
        "[the run's, else $TOOLKIT_DATA or ./data].",
    )
    image_size: int | None = option(
        None, "Input side in pixels; image folders are resized and centre-cropped to it [the images']."
    )
    on_bad_image: str = option(
        "fail",
        "fail | skip: an unreadable file in an image folder stops the run, or is "
        "left out (listed in the summary) [fail].",
    )
    download: bool = option(True, "Try torchvision's download when the data set is missing [yes].")
    # Recipe fields: None means "the registry's value for this model".
    epochs: float | None = option(None, "Epochs [recipe]; a fraction ends the last one early.")
    batch_size: int | None = option(None, "Global batch size: images per optimizer step over all ranks [recipe].")
    lr: float | None = option(None, "Peak learning rate [recipe].")
    optimizer: str | None = option(None, "adam | adamw | sgd [recipe].")
    weight_decay: float | None = option(None, "Weight decay [recipe].")
    momentum: float | None = option(None, "SGD momentum [recipe].")
    nesterov: bool | None = None
    schedule: str | None = option(None, "constant | multistep | cosine | onecycle | warmup-linear [recipe].")
    label_smoothing: float | None = option(None, "Label smoothing [recipe].")
    augment: bool | None = option(None, "Random crop and flip [recipe].")
    normalize: bool | None = option(None, "Subtract the mean, divide by the std [recipe].")
    drop_last: bool | None = None
    crop_padding: int | None = None
    crop_pad_mode: str | None = None
    flip: str | None = None
    warmup_fraction: float | None = None
    lr_start_factor: float | None = None
    lr_end_factor: float | None = None
    lr_scales: tuple[tuple[str, float], ...] | None = None
    freeze_after: tuple[tuple[str, float], ...] | None = None
    lookahead_every: int | None = None
    lookahead_decay: float | None = None
    data_init_images: int | None = None
    tta: str | None = None
    amp_allowed: tuple[str, ...] | None = None  # autocast precisions the policy may choose
    # Run
    device: str = option("auto", "auto (cuda > mps > cpu) | cpu | cuda[:N] | mps [auto].")
    limit_train: int | None = option(None, "Use the first N training images [all].")
    limit_test: int | None = option(None, "Use the first N test images [all].")
    val_size: int | None = option(None, "Hold out N training images (stratified, fixed by --seed) for validation.")
    test_eval: bool = True  # False: the test set is not even loaded (a sweep's trials see validation only)
    seed: int = option(0, "Seed for weights, shuffling and augmentation [0].")
    out: str = option(DEFAULT_ROOT, f"Folder of runs; a run goes to OUT/RUN_NAME [{DEFAULT_ROOT}].")
    run_name: str | None = option(None, "Run folder name [MODEL-YYYYmmdd-HHMMSS-xxxx].")
    eval_batch_size: int = 1000  # images per evaluation batch (no effect on results)
    stop_at_accuracy: float | None = None  # percent; stop after the first epoch whose test accuracy reaches it
    # Speed switches: "auto"/None leave one to the speed policy (speed.py), which times the candidates on this
    # machine; a started run records the concrete choice, so exports, reports and a resume know it.
    amp: str = option(
        AUTO, "Autocast: auto | off | bf16 | fp16 (fp16 adds a GradScaler) [auto: the recipe's, if faster here]."
    )
    channels_last: bool | None = option(None, "NHWC memory format [auto: timed].")
    compile: bool | None = option(None, "torch.compile the model [auto: when it repays].")

    def resolved(self) -> TrainConfig:
        """Fill recipe fields from the registry, name the run, and validate everything."""
        from toolkit.models import get_spec
        from toolkit.models.external import short_name

        spec = get_spec(self.model, self.model_args)
        recipe = asdict(spec.recipe)
        filled = {k: recipe[k] for k in recipe if getattr(self, k) is None}
        cfg = replace(self, **filled)
        if cfg.run_name is None:
            # The random suffix keeps two runs started in the same second out of each other's folder.
            stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
            cfg = replace(cfg, run_name=f"{short_name(cfg.model)}-{stamp}")
        cfg.validate()
        return cfg

    def validate(self) -> None:
        from toolkit.data import BAD_IMAGE_POLICIES, DATASETS, native_image_size
        from toolkit.models.external import check_arg_value

        positive = {
            "batch_size": self.batch_size,
            "eval_batch_size": self.eval_batch_size,
            "limit_train": self.limit_train,
            "limit_test": self.limit_test,
            "val_size": self.val_size,
            "image_size": self.image_size,
        }
        for name, value in positive.items():
            if value is not None and value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
        if self.epochs is not None and not 0 < self.epochs < math.inf:
            raise ConfigError(f"--epochs must be a positive number, got {self.epochs}")
        if not self.test_eval and not self.val_size:
            raise ConfigError("training without test evaluation needs a validation split: set --val-size")
        if not self.test_eval and self.stop_at_accuracy is not None:
            raise ConfigError("a target test accuracy needs the test evaluation")
        if self.stop_at_accuracy is not None and not 0 < self.stop_at_accuracy <= 100:
            raise ConfigError(f"target accuracy must be in (0, 100] percent, got {self.stop_at_accuracy}")
        # Each bound also rejects NaN (every comparison with NaN is false) and, where it matters, infinity.
        bounds = {
            "lr": (self.lr, "a positive finite number", lambda v: 0 < v < math.inf),
            "weight_decay": (self.weight_decay, "a finite number >= 0", lambda v: 0 <= v < math.inf),
            "momentum": (self.momentum, "in [0, 1)", lambda v: 0 <= v < 1),
            "label_smoothing": (self.label_smoothing, "in [0, 1)", lambda v: 0 <= v < 1),
        }
        for name, (value, what, ok) in bounds.items():
            if value is not None and not ok(value):
                raise ConfigError(f"--{name.replace('_', '-')} must be {what}, got {value}")
        choices = {
            "dataset": (self.dataset, DATASETS),
            "optimizer": (self.optimizer, OPTIMIZERS),
            "schedule": (self.schedule, SCHEDULES),
            "amp": (self.amp, (*AMP_MODES, AUTO)),
            "crop_pad_mode": (self.crop_pad_mode, PAD_MODES),
            "flip": (self.flip, FLIPS),
            "tta": (self.tta, TTA_POLICIES),
            "on_bad_image": (self.on_bad_image, BAD_IMAGE_POLICIES),
        }
        for name, (value, allowed) in choices.items():
            if value is not None and value not in allowed:
                raise ConfigError(f"unknown {name} {value!r}; choose one of: {', '.join(allowed)}")
        native = native_image_size(self.dataset)
        if self.image_size is not None and native is not None and self.image_size != native:
            raise ConfigError(
                f"--image-size {self.image_size}: {self.dataset} images are {native}x{native}; other sizes need "
                f"--dataset imagefolder (or synthetic)"
            )
        for key, value in (self.model_args or {}).items():
            check_arg_value(key, value)
        if self.run_name is not None:
            check_folder_name(self.run_name, "--run-name")
        for mode in self.amp_allowed or ():
            if mode not in AMP_MODES[1:]:
                raise ConfigError(f"amp_allowed names {mode!r}; choose among: {', '.join(AMP_MODES[1:])}")

    @property
    def speed_decided(self) -> bool:
        """True once every speed switch holds a concrete value (what `prepare` needs)."""
        return self.amp != AUTO and self.channels_last is not None and self.compile is not None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """From a checkpoint's train_config; recipe fields it predates get the neutral Recipe() defaults."""
        from toolkit.models import Recipe

        known = {f.name for f in fields(cls)}
        values = {k: _tuples(v) for k, v in d.items() if k in known}
        neutral = asdict(Recipe())
        values.update({k: neutral[k] for k in neutral if values.get(k) is None})
        return cls(**values)


def load_config_file(path: str | Path) -> TrainConfig:
    """A TrainConfig from a TOML or JSON file of its fields; an unknown key or a wrong type is one line naming it.

    Only the fields given are set; the others keep their defaults (recipe fields: the model's recipe).
    Nothing in the file is executed or evaluated: TOML and JSON are data.
    """
    path = Path(path)
    data = read_table(path, what="config file")
    types = {f.name: str(f.type) for f in fields(TrainConfig)}
    values = {}
    for key, value in data.items():
        if key not in types:
            close = difflib.get_close_matches(key, types, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"config file {path}: unknown key {key!r}{hint}")
        values[key] = typed_value(f"config file {path}", key, value, types[key])
    return TrainConfig(**values)


def read_table(path: Path, what: str) -> dict[str, Any]:
    """The top-level table of a TOML or JSON file, parsed as data; one-line errors name the file."""
    if path.is_dir():
        raise ConfigError(f"{what} {path} is a folder; pass a .toml or .json file")
    if not path.is_file():
        raise ConfigError(f"{what} {path} does not exist")
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(path.read_text())
        elif path.suffix == ".json":  # a key given twice is an error, as TOML makes it, not "the last one wins"
            data = json.loads(path.read_text(), object_pairs_hook=_unique_keys)
        else:
            raise ConfigError(f"{what} {path}: use a .toml or .json file")
    except (ValueError, UnicodeDecodeError) as exc:  # TOMLDecodeError and JSONDecodeError are ValueErrors
        raise ConfigError(f"{what} {path} is not valid {path.suffix[1:].upper()}: {first_line(exc)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {path}: expected a table of TrainConfig fields, got {type(data).__name__}")
    return data


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"key {key!r} is given twice")
        seen[key] = value
    return seen


def typed_value(where: str, key: str, value: Any, annotation: str) -> Any:
    """`value` checked against the field's annotation ("float | None", "tuple[tuple[str, float], ...]", ...);
    `where` names the file in the error ("config file x.toml")."""
    optional = annotation.endswith("| None")
    base = annotation.removesuffix(" | None")

    def wrong(what: str) -> ConfigError:
        return ConfigError(f"{where}: {key!r} must be {what}, got {value!r}")

    if value is None:
        if optional:
            return None
        raise wrong(base)
    if base == "bool":
        if not isinstance(value, bool):
            raise wrong("true or false")
        return value
    if base == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong("an integer")
        return value
    if base == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise wrong("a number")
        return float(value)
    if base == "str":
        if not isinstance(value, str):
            raise wrong("a string")
        return value
    if base == "dict[str, Any]":
        from toolkit.models.external import check_arg_value

        if not isinstance(value, dict):
            raise wrong("a table (model_args = { num_classes = 10 })")
        return {k: check_arg_value(k, v) for k, v in value.items()}
    if base == "tuple[str, ...]":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise wrong("a list of strings")
        return tuple(value)
    # tuple[tuple[str, float], ...]: a list of [name, number] pairs
    if not isinstance(value, list) or not all(
        isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) and isinstance(p[1], (int, float)) for p in value
    ):
        raise wrong('a list of ["name", number] pairs')
    return tuple((p[0], float(p[1])) for p in value)


def _tuples(value: Any) -> Any:
    """JSON and checkpoints give lists back; the frozen config holds tuples (hashable, comparable)."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value
