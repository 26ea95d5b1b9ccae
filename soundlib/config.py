"""Configuration objects from plain mappings: one checker for keys, types and numbers.

Every configuration in soundlib is a frozen dataclass (``FeatureSpec``,
``TrainConfig``, ``SweepConfig``, ...). YAML files, notebook parameters and
JSON files on disk reach them as mappings; :func:`from_mapping` is the one
place that turns such a mapping into the dataclass: it rejects unknown keys
(naming the key, where it was found and what is allowed), converts values to
the field's declared type (YAML reads ``1e-4`` as a string; JSON turns tuples
into lists), rejects NaN and infinities, and builds nested dataclasses.
The dataclasses' own ``__post_init__`` then checks ranges.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import types
import typing
from pathlib import Path
from typing import Any, Mapping, Sequence, TypeVar

from soundlib.errors import ConfigError, SoundlibError

__all__ = ["cache_dir", "check_keys", "to_int", "to_float", "from_mapping", "to_dict", "check_finite"]

T = TypeVar("T")


def check_keys(d: Any, allowed: Sequence[str], where: str) -> Mapping[str, Any]:
    """Return ``d`` if it is a mapping whose keys are all in ``allowed``; else raise :class:`ConfigError`."""
    if not isinstance(d, Mapping):
        raise ConfigError(f"{where}: expected a mapping of keys to values, got {type(d).__name__} {d!r}")
    unknown = [k for k in d if k not in allowed]
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(repr(k) for k in unknown)}; "
                          f"expected some of {', '.join(allowed)}")
    return d


def to_int(value: Any, where: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """An integer (``3``, ``3.0`` or ``"3"``; never a bool), optionally bounded."""
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if isinstance(value, str):
        try:
            value = float(value.strip()) if any(c in value for c in ".eE") else int(value.strip())
        except ValueError:
            raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
    if isinstance(value, float):
        if not (math.isfinite(value) and value.is_integer()):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        value = int(value)
    if not isinstance(value, int):
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{where}: must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{where}: must be at most {maximum}, got {value}")
    return value


def to_float(value: Any, where: str, *, minimum: float | None = None, maximum: float | None = None) -> float:
    """A finite number (YAML's ``"1e-4"`` strings included), optionally bounded. NaN and inf are errors."""
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    try:
        x = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if not math.isfinite(x):
        raise ConfigError(f"{where}: expected a finite number, got {value!r}")
    if minimum is not None and x < minimum:
        raise ConfigError(f"{where}: must be at least {minimum:g}, got {x:g}")
    if maximum is not None and x > maximum:
        raise ConfigError(f"{where}: must be at most {maximum:g}, got {x:g}")
    return x


@functools.lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _split_optional(tp: Any) -> tuple[Any, bool]:
    """``X | None`` -> ``(X, True)``; anything else -> ``(tp, False)``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(args) < len(typing.get_args(tp)):
            return args[0], True
    return tp, False


def _coerce(value: Any, tp: Any, where: str, base: Any) -> Any:
    inner, optional = _split_optional(tp)
    if value is None:
        if optional or inner is Any:
            return None
        raise ConfigError(f"{where}: a value is required, got null")
    if inner is Any:
        return value
    if dataclasses.is_dataclass(inner) and isinstance(inner, type):
        if isinstance(value, inner):
            return value
        return from_mapping(inner, value, where=where, base=base if isinstance(base, inner) else None)
    if inner is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if inner is int:
        return to_int(value, where)
    if inner is float:
        return to_float(value, where)
    if inner is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if inner is Path:
        if not isinstance(value, (str, Path)):
            raise ConfigError(f"{where}: expected a path, got {value!r}")
        return Path(value)
    if typing.get_origin(inner) is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(inner)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{where}[{i}]", None) for i, v in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}: {list(value)!r}")
        return tuple(_coerce(v, a, f"{where}[{i}]", None) for i, (v, a) in enumerate(zip(value, args)))
    if typing.get_origin(inner) in (typing.Union, types.UnionType):
        # e.g. ``bool | tuple[int, ...]``: accept the first member that converts
        for member in typing.get_args(inner):
            if member is type(None):
                continue
            try:
                return _coerce(value, member, where, base)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: {value!r} is not a valid value")
    return value


def from_mapping(cls: type[T], d: Any, *, where: str, base: T | None = None) -> T:
    """Build dataclass ``cls`` from mapping ``d`` (fields missing from ``d`` keep ``base``'s or the defaults).

    Unknown keys, wrong types, NaN/inf and out-of-range values raise
    :class:`ConfigError` whose message starts with ``where``.
    """
    names = [f.name for f in dataclasses.fields(cls) if f.init]  # type: ignore[arg-type]
    check_keys(d, names, where)
    hints = _hints(cls)  # type: ignore[arg-type]
    values = {k: _coerce(v, hints.get(k, Any), f"{where}: {k}", getattr(base, k, None)) for k, v in d.items()}
    try:
        return dataclasses.replace(base, **values) if base is not None else cls(**values)  # type: ignore[type-var]
    except ConfigError as exc:
        msg = str(exc)
        raise ConfigError(msg if msg.startswith(where) else f"{where}: {msg}") from None
    except SoundlibError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def to_dict(obj: Any) -> dict[str, Any]:
    """A dataclass as plain JSON/YAML data (tuples as lists, paths as strings, nested dataclasses as dicts)."""

    def plain(v: Any, top: bool = False) -> Any:
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            if not top and callable(getattr(v, "to_dict", None)):
                return v.to_dict()  # type: ignore[attr-defined]  # a nested config writes itself (e.g. a method inside a fusion)
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, Mapping):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, Path):
            return str(v)
        return v

    return plain(obj, top=True)


def check_finite(obj: Any, where: str) -> None:
    """Raise :class:`ConfigError` if any float field of dataclass ``obj`` (or inside a tuple field) is NaN or infinite."""
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        items = v if isinstance(v, tuple) else (v,)
        for x in items:
            if isinstance(x, float) and not math.isfinite(x):
                raise ConfigError(f"{where}: {f.name} must be a finite number, got {v!r}")

def cache_dir() -> Path:
    """soundlib's cache root: ``$SOUNDLIB_CACHE_DIR`` or ``~/.cache/soundlib``, as an absolute path
    (a relative ``$SOUNDLIB_CACHE_DIR`` is taken from the working folder).

    Raises
    ------
    ConfigError
        The path (or a folder on the way to it) exists and is a file.
    """
    raw = os.environ.get("SOUNDLIB_CACHE_DIR")
    path = Path(os.path.abspath(Path(raw or Path.home() / ".cache" / "soundlib").expanduser()))
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                where = f"$SOUNDLIB_CACHE_DIR={raw}" if raw else "the soundlib cache"
                raise ConfigError(f"{where}: {p} is a file, expected a folder (soundlib's cache of backbones, "
                                  "embeddings and audio hashes); point $SOUNDLIB_CACHE_DIR at a folder")
            break
    return path
