"""Reading a registry file: ``${VAR}`` interpolation, YAML, schema, cross-checks.

Every error names the file, the line and the key, because operators fix registries
by hand and a bare "invalid config" costs them an afternoon.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec
import yaml

from engines import UnknownEngine, engine_class

from ..presets import PRESETS
from ._schema import ModelSpec, Registry

__all__ = ["ConfigError", "load_registry", "parse_registry"]

_ENV = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_SEGMENT = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
_UNKNOWN = re.compile(r"unknown field `([^`]+)`")
_MISSING = re.compile(r"missing required field `([^`]+)`")


class ConfigError(Exception):
    def __init__(self, file: str, line: int | None, key: str | None, message: str) -> None:
        where = file if line is None else f"{file}:{line}"
        super().__init__(f"{where}: {key}: {message}" if key else f"{where}: {message}")
        self.file = file
        self.line = line
        self.key = key
        self.message = message


def _interpolate(text: str, file: str, env: Mapping[str, str]) -> str:
    out: list[str] = []
    for lineno, line in enumerate(text.splitlines(keepends=True), start=1):

        def substitute(match: re.Match[str], lineno: int = lineno) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match.group(1), match.group(2)
            value = env.get(name)
            if value is None or (value == "" and default is not None):
                if default is None:
                    raise ConfigError(
                        file,
                        lineno,
                        name,
                        "environment variable is not set (write ${NAME:-default})",
                    )
                return default
            return value

        # Whole-line comments are left alone: a ${VAR} there documents, it does not demand.
        out.append(line if line.lstrip().startswith("#") else _ENV.sub(substitute, line))
    return "".join(out)


def _segments(path: str) -> list[str | int]:
    return [
        m.group(1) if m.group(1) is not None else int(m.group(2)) for m in _SEGMENT.finditer(path)
    ]


def _dotted(segments: list[str | int]) -> str:
    text = ""
    for seg in segments:
        text += f"[{seg}]" if isinstance(seg, int) else (f".{seg}" if text else seg)
    return text


def _line_of(root: yaml.Node | None, segments: list[str | int]) -> int | None:
    """The 1-based line of the node at ``segments``, or of its nearest ancestor."""
    node = root
    line = None if node is None else node.start_mark.line + 1
    for seg in segments:
        if isinstance(node, yaml.MappingNode) and isinstance(seg, str):
            match = next((kv for kv in node.value if kv[0].value == seg), None)
            if match is None:
                return line
            line = match[0].start_mark.line + 1
            node = match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(seg, int) and seg < len(node.value):
            node = node.value[seg]
            line = node.start_mark.line + 1
        else:
            return line
    return line


class _Reader:
    def __init__(self, file: str, root: yaml.Node | None) -> None:
        self.file = file
        self.root = root

    def error(self, segments: list[str | int], message: str) -> ConfigError:
        return ConfigError(
            self.file, _line_of(self.root, segments), _dotted(segments) or None, message
        )

    def from_validation(self, prefix: list[str | int], exc: msgspec.ValidationError) -> ConfigError:
        found = _AT.match(str(exc))
        message, path = (found.group("msg"), found.group("path") or "") if found else (str(exc), "")
        segments = prefix + _segments(path)
        unknown = _UNKNOWN.search(message)
        missing = _MISSING.search(message)
        if unknown:
            segments.append(unknown.group(1))
            message = "unknown key"
        elif missing:
            segments.append(missing.group(1))
        return self.error(segments, message.replace("`", ""))


def _convert_engine_blocks(raw: Any, reader: _Reader) -> None:
    """Decode each deployment's engine block with that engine's own options type."""
    models = raw.get("models") if isinstance(raw, dict) else None
    if not isinstance(models, list):
        return
    for i, model in enumerate(models):
        deployments = model.get("deployments") if isinstance(model, dict) else None
        if not isinstance(deployments, list):
            continue
        for j, dep in enumerate(deployments):
            where: list[str | int] = ["models", i, "deployments", j]
            if not isinstance(dep, dict) or not isinstance(dep.get("engine"), str):
                continue
            if "options" in dep:
                raise reader.error(
                    [*where, "options"],
                    "unknown key (engine settings go in a block named after the engine)",
                )
            engine = dep["engine"]
            try:
                options_type = engine_class(engine).options_type
            except UnknownEngine as exc:
                raise reader.error([*where, "engine"], str(exc)) from None
            except ImportError as exc:
                raise reader.error(
                    [*where, "engine"], f"engine {engine!r} cannot be imported: {exc}"
                ) from None
            block = dep.pop(engine, None)
            try:
                dep["options"] = msgspec.convert(block or {}, options_type)
            except msgspec.ValidationError as exc:
                raise reader.from_validation([*where, engine], exc) from None


def _check(registry: Registry, reader: _Reader, base: Path) -> Registry:
    seen: dict[str, list[str | int]] = {}
    for i, model in enumerate(registry.models):
        names: list[tuple[list[str | int], str]] = [(["models", i, "name"], model.name)]
        names += [(["models", i, "aliases", k], alias) for k, alias in enumerate(model.aliases)]
        for where, name in names:
            if name in seen:
                raise reader.error(where, f"{name!r} is already used at {_dotted(seen[name])}")
            seen[name] = where
    if registry.default_model is not None and registry.default_model not in seen:
        raise reader.error(
            ["default_model"],
            f"{registry.default_model!r} is not a model name or alias of this registry",
        )
    deployment_names: set[str] = set()
    models: list[ModelSpec] = []
    for i, model in enumerate(registry.models):
        if model.preset is not None and model.preset not in PRESETS:
            raise reader.error(
                ["models", i, "preset"],
                f"unknown preset {model.preset!r}; known presets: {', '.join(PRESETS)}",
            )
        for k, fallback in enumerate(model.fallbacks):
            if fallback not in seen or seen[fallback][1] == i:
                raise reader.error(
                    ["models", i, "fallbacks", k],
                    f"{fallback!r} is not another model of this registry",
                )
        deployments = []
        for j, dep in enumerate(model.deployments):
            name = dep.name or (
                model.name if len(model.deployments) == 1 else f"{model.name}-{j + 1}"
            )
            if name in deployment_names:
                raise reader.error(
                    ["models", i, "deployments", j, "name"],
                    f"deployment name {name!r} is used twice",
                )
            deployment_names.add(name)
            for key in engine_class(dep.engine).requires:
                if getattr(dep, key) is None:
                    raise reader.error(
                        ["models", i, "deployments", j],
                        f"the {dep.engine} engine needs `{key}` in this deployment",
                    )
            path = dep.path
            if path is not None and not Path(path).is_absolute():
                path = str((base / path).resolve())
            deployments.append(msgspec.structs.replace(dep, name=name, path=path))
        models.append(msgspec.structs.replace(model, deployments=tuple(deployments)))
    return msgspec.structs.replace(registry, models=tuple(models))


def parse_registry(
    text: str,
    *,
    file: str = "<registry>",
    base: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Registry:
    text = _interpolate(text, file, os.environ if env is None else env)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark is not None else None
        raise ConfigError(file, line, None, f"invalid YAML: {exc.problem}") from None
    reader = _Reader(file, root)
    if not isinstance(raw, dict):
        raise reader.error([], "the registry must be a mapping with a `models` list")
    _convert_engine_blocks(raw, reader)
    try:
        registry = msgspec.convert(raw, Registry)
    except msgspec.ValidationError as exc:
        raise reader.from_validation([], exc) from None
    return _check(registry, reader, base or Path.cwd())


def load_registry(path: Path, env: Mapping[str, str] | None = None) -> Registry:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            str(path), None, None, f"cannot read the registry: {exc.strerror}"
        ) from None
    return parse_registry(text, file=str(path), base=path.resolve().parent, env=env)
