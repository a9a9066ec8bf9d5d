"""Models: the registry (`create_model`, `get_spec`, `list_models`) and models from outside it (external.py)."""

from toolkit.models.registry import (
    FOREIGN_RECIPE,
    REGISTRY,
    ModelSpec,
    Recipe,
    build_model,
    create_model,
    get_spec,
    list_models,
)

__all__ = [
    "FOREIGN_RECIPE",
    "REGISTRY",
    "ModelSpec",
    "Recipe",
    "build_model",
    "create_model",
    "get_spec",
    "list_models",
]
