"""Model registry: `create_model(name)`, `list_models()`, `get_spec(name)`; see registry.py."""

from toolkit.models.registry import REGISTRY, ModelSpec, Recipe, create_model, get_spec, list_models

__all__ = ["REGISTRY", "ModelSpec", "Recipe", "create_model", "get_spec", "list_models"]
