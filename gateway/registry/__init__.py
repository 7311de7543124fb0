"""The YAML model registry: which model names exist and where each one runs."""

from ._load import ConfigError, load_registry, parse_registry
from ._schema import (
    Defaults,
    DegenerationGuard,
    Deployment,
    Limits,
    ModelSpec,
    Reasoning,
    Registry,
    Routing,
    Timeouts,
)

__all__ = [
    "ConfigError",
    "Defaults",
    "DegenerationGuard",
    "Deployment",
    "Limits",
    "ModelSpec",
    "Reasoning",
    "Registry",
    "Routing",
    "Timeouts",
    "load_registry",
    "parse_registry",
]
