"""Backends and the registry that turns model ids into them."""

from rung.models.base import (
    ChatMessage,
    ClassifyRequest,
    GenerateRequest,
    Generation,
    Model,
    ModelInfo,
    Prediction,
    run_sync,
)
from rung.models.registry import bundled_models, create, parse_model_id, providers

__all__ = [
    "ChatMessage",
    "ClassifyRequest",
    "GenerateRequest",
    "Generation",
    "Model",
    "ModelInfo",
    "Prediction",
    "bundled_models",
    "create",
    "parse_model_id",
    "providers",
    "run_sync",
]
