"""Models from outside the registry: `package.module:factory` paths and `toolkit.models` entry points.

A factory path is any importable callable that returns an `nn.Module` (`torchvision.models:mobilenet_v3_small`);
its keyword arguments come from `--model-arg key=value` (TOML values). A plugin package adds named models by
declaring, in its own metadata, an entry point in the group `toolkit.models` whose object is a `ModelSpec`
(recipe and reference figure included), as timm's `register_model` adds names to timm.

Nothing here imports a factory's module until a model is built, and `model_from_checkpoint` builds one only
when the user named it (registry, installed entry point, or the same `--model` given again): a checkpoint is
data and never decides by itself which code runs. `trust()` is how a command says "the user named this".
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import sys
from typing import Any

from torch import nn

from toolkit.core.errors import ConfigError, first_line

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ENTRY_POINT_GROUP = "toolkit.models"
# Factory paths the user named in this process or its parent (children inherit the environment).
TRUST_ENV = "TOOLKIT_TRUSTED_MODELS"
_DOTTED = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"
_FACTORY = re.compile(rf"^{_DOTTED}:{_DOTTED}$")
_KEY = re.compile(r"^[A-Za-z_]\w*$")


def is_factory_path(name: str) -> bool:
    return bool(_FACTORY.match(name))


def short_name(name: str) -> str:
    """What a run folder is named after: `torchvision.models:mobilenet_v3_small` -> `mobilenet_v3_small`."""
    return name.rsplit(":", 1)[-1].rsplit(".", 1)[-1] if ":" in name else name


def parse_model_args(items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """`["num_classes=10", "dropout=0.2", "name=tiny"]` -> a dict; values are TOML, a bare word is a string."""
    args: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key, text = key.strip(), text.strip()
        if not sep or not _KEY.match(key) or not text:
            raise ConfigError(
                f"--model-arg {item!r}: expected KEY=VALUE with a Python identifier as KEY and a TOML value "
                f'(10, 0.5, true, "text", [1, 2]), e.g. --model-arg num_classes=10'
            )
        try:
            value = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            if not re.fullmatch(r"[A-Za-z_][\w.\-]*", text):
                raise ConfigError(
                    f'--model-arg {key}={text}: not a TOML value; quote a string ("..."), or write a number, '
                    f"true/false or a list"
                ) from None
            value = text  # a bare word such as `relu` or `IMAGENET1K_V1` is meant as a string
        args[key] = check_arg_value(key, value)
    return args


def check_arg_value(key: str, value: Any) -> Any:
    """Model arguments are stored in the checkpoint, read with weights_only: plain data only."""
    if isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [check_arg_value(key, v) for v in value]
    if isinstance(value, dict):
        return {str(k): check_arg_value(f"{key}.{k}", v) for k, v in value.items()}
    raise ConfigError(
        f"model argument {key!r}: {type(value).__name__} values are not supported (use numbers, "
        f"strings, booleans, lists or tables)"
    )


def entry_points() -> dict[str, Any]:
    """Installed `toolkit.models` entry points by name (nothing is imported to list them)."""
    from importlib.metadata import entry_points as installed

    return {ep.name: ep for ep in installed(group=ENTRY_POINT_GROUP)}


def load_entry_point(ep) -> Any:
    """The ModelSpec an installed plugin declares, checked; one line when the plugin is broken."""
    from toolkit.models.registry import ModelSpec

    try:
        spec = ep.load()
    except Exception as exc:
        raise ConfigError(
            f"model {ep.name!r}: its plugin ({ep.value}) cannot be imported: {type(exc).__name__}: {first_line(exc)}"
        ) from None
    if callable(spec) and not isinstance(spec, ModelSpec):
        spec = spec()
    if not isinstance(spec, ModelSpec) or spec.name != ep.name:
        raise ConfigError(
            f"model {ep.name!r}: the entry point {ep.value} must give a toolkit.models.ModelSpec named {ep.name!r}, "
            f"got {type(spec).__name__}"
        )
    dist = getattr(ep, "dist", None)
    origin = f"entry point of {dist.name} {dist.version}" if dist is not None else f"entry point {ep.value}"
    return spec.with_origin(
        "entry-point", origin, package=dist.name if dist else None, version=dist.version if dist else None
    )


def package_version(module: str) -> tuple[str, str | None]:
    """(top-level package, its installed version or None) for a factory's module, without importing it."""
    from importlib.metadata import PackageNotFoundError, packages_distributions, version

    top = module.split(".", 1)[0]
    for dist in packages_distributions().get(top, [top]):
        try:
            return dist, version(dist)
        except PackageNotFoundError:
            continue
    return top, None


def call_factory(path: str, args: dict[str, Any], num_classes: int) -> nn.Module:
    """Import `module:attr`, call it with `args` (plus num_classes when it takes one and args do not), check."""
    module_name, attr = path.split(":", 1)
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or the module itself failing at import
        raise ConfigError(
            f"--model {path}: cannot import {module_name} ({type(exc).__name__}: {first_line(exc)}); "
            f"is its package installed in this environment?"
        ) from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"--model {path}: {module_name} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ConfigError(f"--model {path}: {attr} is a {type(obj).__name__}, not a callable that returns a model")
    kwargs = dict(args)
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        signature = None
    if signature is not None:
        takes = signature.parameters
        if "num_classes" not in kwargs and (
            "num_classes" in takes or any(p.kind is p.VAR_KEYWORD for p in takes.values())
        ):
            kwargs["num_classes"] = num_classes
        try:
            signature.bind(**kwargs)
        except TypeError as exc:
            raise ConfigError(
                f"--model {path}: {exc}; give it with --model-arg KEY=VALUE (its parameters: "
                f"{', '.join(takes) or 'none'})"
            ) from None
    try:
        model = obj(**kwargs)
    except Exception as exc:
        raise ConfigError(f"--model {path}: the factory raised {type(exc).__name__}: {first_line(exc)}") from None
    if not isinstance(model, nn.Module):
        raise ConfigError(f"--model {path}: the factory returned a {type(model).__name__}, not a torch.nn.Module")
    return model


def trust(path: str | None) -> None:
    """Record that the user named this factory (in this process and the child processes it starts)."""
    if not path or not is_factory_path(path):
        return
    trusted = trusted_factories()
    if path not in trusted:
        os.environ[TRUST_ENV] = ",".join([*trusted, path])


def trusted_factories() -> list[str]:
    return [p for p in os.environ.get(TRUST_ENV, "").split(",") if p]
