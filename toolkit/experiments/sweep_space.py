"""A sweep's search space: the default one per model, one read from TOML/JSON (its form checked), and the check
that every value in it can be trained with the command line's options, before the first trial."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from toolkit.core.errors import ConfigError, first_line
from toolkit.models import get_spec

DISTRIBUTIONS = ("float", "int", "categorical")


# Set by the sweep itself, or not hyperparameters: a space may not search them.
NOT_SEARCHABLE = (
    "model", "dataset", "data_dir", "download", "device", "limit_train", "limit_test", "val_size",
    "test_eval", "seed", "out", "run_name", "stop_at_accuracy", "eval_batch_size",
)  # fmt: skip


def default_space(model: str) -> dict[str, dict[str, Any]]:
    """A decade of lr around the recipe's, weight decay, label smoothing, augmentation, batch size, the lr
    schedule (and SGD momentum): the knobs a recipe has. Schedules scale with a run's length, so a short trial's
    cosine is the same shape as the retrain's."""
    r = get_spec(model).recipe
    space: dict[str, dict[str, Any]] = {
        "lr": {"type": "float", "low": r.lr / math.sqrt(10), "high": r.lr * math.sqrt(10), "log": True},
        "weight_decay": {"type": "float", "low": 1e-6, "high": 1e-2, "log": True},
        "label_smoothing": {"type": "float", "low": 0.0, "high": 0.2},
        "augment": {"type": "categorical", "choices": [True, False]},
        "batch_size": {
            "type": "categorical",
            "choices": sorted({max(8, r.batch_size // 2), r.batch_size, r.batch_size * 2}),
        },
        # warmup-linear is left out: it needs three more parameters to mean anything
        "schedule": {"type": "categorical", "choices": list(dict.fromkeys([r.schedule, "cosine", "onecycle"]))},
    }
    if r.optimizer == "sgd":
        space["momentum"] = {"type": "float", "low": 0.8, "high": 0.95}
    return space


ENTRY_KEYS = {
    "float": {"type", "low", "high", "log"},
    "int": {"type", "low", "high", "log"},
    "categorical": {"type", "choices"},
}


def load_space(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """A search space from TOML/JSON: `[lr] type = "float", low, high, log` per TrainConfig field. Its form is
    checked here; its values against a model and the command line's options by `check_space`."""
    from dataclasses import fields

    from toolkit.train.config import TrainConfig, read_table

    data = read_table(Path(path), what="search space")
    names = {f.name for f in fields(TrainConfig)}
    for key, dist in data.items():
        where = f"search space {path}: {key!r}"
        if key not in names:
            raise ConfigError(f"{where} is not a TrainConfig field")
        if key in NOT_SEARCHABLE:
            raise ConfigError(f"{where} is set by the sweep or the command line, not searched; remove it")
        if not isinstance(dist, dict) or dist.get("type") not in DISTRIBUTIONS:
            raise ConfigError(f"{where} needs type = one of {', '.join(DISTRIBUTIONS)}")
        unknown = sorted(set(dist) - ENTRY_KEYS[dist["type"]])
        if unknown:  # e.g. `step`: silently ignored, it would search another space than the one written
            raise ConfigError(
                f"{where}: unknown key {unknown[0]!r} for a {dist['type']} entry; "
                f"it takes {', '.join(sorted(ENTRY_KEYS[dist['type']]))}"
            )
        if dist["type"] == "categorical":
            if not isinstance(dist.get("choices"), list) or not dist["choices"]:
                raise ConfigError(f"{where}: choices must be a non-empty list")
            continue
        low, high = dist.get("low"), dist.get("high")
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (low, high))
        if not numbers or not low < high:
            raise ConfigError(f"{where}: needs finite numbers low < high, got low={low!r}, high={high!r}")
        if dist["type"] == "int" and not all(float(v).is_integer() for v in (low, high)):
            raise ConfigError(f"{where}: an int range needs whole numbers, got low={low!r}, high={high!r}")
        if dist.get("log") and not (low >= 1 if dist["type"] == "int" else low > 0):
            raise ConfigError(f"{where}: a log range needs low {'>= 1' if dist['type'] == 'int' else '> 0'}, got {low}")
        if not isinstance(dist.get("log", False), bool):
            raise ConfigError(f"{where}: log must be true or false, got {dist['log']!r}")
    if not data:
        raise ConfigError(f"search space {path} is empty")
    return data


def check_space(
    space: dict[str, dict[str, Any]], model: str, fixed: dict[str, Any], where: str = "search space"
) -> None:
    """Refuse, before the first trial, a space that no trial could train as written: a key the command line
    also sets (the trial would train with the option, and the study record the sampled value), a value of the
    wrong type for its field, or one that training refuses (optimizer "bogus", a batch size below 1). Every
    choice and both ends of every range are checked, with the command line's options beside them."""
    from dataclasses import fields, replace

    from toolkit.train.config import TrainConfig, typed_value

    clash = sorted(set(space) & set(fixed))
    if clash:
        key = clash[0]
        raise ConfigError(
            f"{where}: {key!r} is also set on the command line (--{key.replace('_', '-')} {fixed[key]}); "
            "a trial would train with the option, not the sampled value: remove one of them"
        )
    types = {f.name: str(f.type) for f in fields(TrainConfig)}
    try:
        base = TrainConfig(model=model, **fixed).resolved()
    except TypeError as exc:
        raise ConfigError(f"unknown training option: {first_line(exc)}") from None
    for key, dist in space.items():
        base_type = types[key].removesuffix(" | None")
        if dist["type"] == "float" and base_type == "int":
            raise ConfigError(f'{where}: {key!r} is a whole number: use type = "int" or "categorical"')
        if dist["type"] in ("float", "int") and base_type not in ("int", "float"):
            raise ConfigError(f'{where}: {key!r} is not a number: use type = "categorical"')
        for value in dist["choices"] if dist["type"] == "categorical" else (dist["low"], dist["high"]):
            typed = typed_value(where, key, value, types[key])
            try:
                replace(base, **{key: typed}).validate()
            except ConfigError as exc:
                raise ConfigError(f"{where}: {key} = {value!r} cannot be trained: {first_line(exc)}") from None


def suggest(trial, space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    params = {}
    for name, d in space.items():
        if d["type"] == "float":
            params[name] = trial.suggest_float(name, d["low"], d["high"], log=bool(d.get("log")))
        elif d["type"] == "int":
            params[name] = trial.suggest_int(name, int(d["low"]), int(d["high"]), log=bool(d.get("log")))
        else:
            params[name] = trial.suggest_categorical(name, d["choices"])
    return params
