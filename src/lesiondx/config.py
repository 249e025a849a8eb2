"""Task configuration: one frozen dataclass per task, loaded from YAML or TOML with checked keys."""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
from pathlib import Path
from typing import Any, TypeVar

import yaml

C = TypeVar("C")


class ConfigError(ValueError):
    """A configuration file is unreadable or names an unknown key / a value of the wrong type."""


def read_mapping(path: str | Path) -> dict[str, Any]:
    """The top-level mapping of a ``.yaml``/``.yml``/``.toml`` file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        text = path.read_text()
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot parse ({exc})") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of keys to values")
    return data


def config_from_mapping(cls: type[C], data: dict[str, Any], *, source: str = "config") -> C:
    """Build dataclass ``cls`` from ``data``; unknown keys and wrong scalar types are errors."""
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        guesses = [f"{key!r} → did you mean {near[0]!r}?" for key in unknown
                   if (near := difflib.get_close_matches(key, list(fields), n=1, cutoff=0.75))]
        hint = f" ({'; '.join(guesses)})" if guesses else ""
        raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)}{hint}; known: {', '.join(fields)}")
    values: dict[str, Any] = {}
    for name, value in data.items():
        default = None if fields[name].default is dataclasses.MISSING else fields[name].default
        if isinstance(default, bool) and not isinstance(value, bool):
            raise ConfigError(f"{source}: {name} must be true or false, not {value!r}")
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ConfigError(f"{source}: {name} must be a number, not {value!r}")
            value = type(default)(value) if isinstance(default, float) else value
        if isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)
        values[name] = value
    return cls(**values)


def load_config(cls: type[C], path: str | Path | None = None, **overrides: Any) -> C:
    """Defaults of ``cls``, updated from the file at ``path`` (if any), then from ``overrides``."""
    data = read_mapping(path) if path is not None else {}
    data.update({k: v for k, v in overrides.items() if v is not None})
    return config_from_mapping(cls, data, source=str(path or "config"))


def config_to_dict(config: Any) -> dict[str, Any]:
    """A plain dict (tuples as lists) suitable for YAML/JSON."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}
