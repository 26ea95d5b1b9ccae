"""Learning methods, compared under one protocol.

======================  ================================================================
``frozen``              embeddings by any frozen embedder (:mod:`soundlib.embedders`: picture
                        backbones, mn04, YAMNet, BirdNET...), standardized, logistic-regression
                        head (C chosen on validation)
``finetune``            the image backbone fine-tuned end to end on the pictures
``scratch``             a small CNN on log-mel trained from scratch (the control: does
                        transfer help at all?)
``mfcc``                MFCC statistics + logistic regression (the classic control)
``birdnet``             BirdNET 2.4 embeddings (opt-in extra; weights CC BY-NC-SA 4.0)
``fusion``              early fusion (members' embeddings concatenated into one head) or
                        late fusion (members' probabilities averaged, weights chosen on
                        validation)
``auto``                pick among candidate methods and fusions on validation, per fold
======================  ================================================================

A method is named in a :class:`MethodSpec`: its ``name`` (the row of the
results table, the folder of a sweep), its ``kind`` (above) and the kind's
options (a frozen dataclass, e.g. :class:`~soundlib.methods.frozen.FrozenOptions`).
:func:`resolve_method` turns a name or a mapping (CLI ``--method``, the sweep
YAML's ``methods:``) into one; :func:`build_method` makes the runnable method.

Methods register themselves (:func:`register_method` on their class, in their own module of this
package); nothing else keeps a list of them.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from typing import TYPE_CHECKING, Any, Callable, Mapping

from soundlib.config import from_mapping, to_dict
from soundlib.errors import ConfigError

if TYPE_CHECKING:
    from soundlib.methods.base import Method

__all__ = ["MethodSpec", "METHOD_KINDS", "DEFAULT_METHOD", "resolve_method", "build_method", "method_kinds",
           "cache_units", "register_method", "method_entry", "CacheUnit"]

DEFAULT_METHOD = "auto"


@dataclasses.dataclass(frozen=True)
class MethodEntry:
    """A registered method kind: its class, its options dataclass, its place in tables."""

    kind: str
    method: "type[Method]"
    options: type
    order: int
    summary: str


_METHODS: dict[str, MethodEntry] = {}
_LOADED = False


def register_method(kind: str, *, options: type, order: int, summary: str) -> Callable[[type], type]:
    """Class decorator: register a :class:`~soundlib.methods.base.Method` subclass as ``kind``.

    Parameters
    ----------
    options : type
        The kind's options dataclass (built from the mapping's other keys by :func:`resolve_method`).
    order : int
        Its place in tables and ``--help`` (smaller first).
    summary : str
        One line for ``--help``.
    """
    def decorate(cls: Any) -> Any:
        cls.kind = kind
        _METHODS[kind] = MethodEntry(kind, cls, options, order, summary)
        return cls

    return decorate


def _registry() -> dict[str, MethodEntry]:
    """kind -> entry: every module of this package imported once (each registers its methods; none
    imports TensorFlow at import time)."""
    global _LOADED
    if not _LOADED:
        _LOADED = True
        for mod in pkgutil.iter_modules(__path__):
            if mod.name not in ("base", "heads"):
                importlib.import_module(f"{__name__}.{mod.name}")
    return dict(sorted(_METHODS.items(), key=lambda kv: kv[1].order))


def method_kinds() -> tuple[str, ...]:
    """The kinds :func:`resolve_method` accepts, in the order tables list them."""
    return tuple(_registry())


def method_entry(kind: str) -> MethodEntry:
    """The registry entry of a kind."""
    return _registry()[kind]


def __getattr__(name: str) -> Any:
    if name == "METHOD_KINDS":  # the kinds, in table order (derived from the registry)
        return method_kinds()
    raise AttributeError(name)


def _embedder_alias(name: str) -> "dict[str, Any] | None":
    """A registered embedder name used as a method name: ``frozen`` on that embedder."""
    from soundlib.embedders import embedder_entry

    if embedder_entry(name) is None:
        return None
    return {"method": "frozen", "backbone": name}


@dataclasses.dataclass(frozen=True)
class MethodSpec:
    """A named, configured method.

    Attributes
    ----------
    name : str
        Its row in results tables and its folder in sweeps.
    kind : str
        One of :func:`method_kinds`.
    options : dataclass
        The kind's options (defaults when built from a bare name).

    variant : FeatureSpec or None
        The pictures/windows this method uses (``None``: the evaluation's variant).
    backbone : str or None
        The embedder handle (``None``: the evaluation's backbone).
    """

    name: str
    kind: str
    options: Any
    variant: Any = None
    backbone: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """``{name, method: kind, <options>}`` (plus ``variant``/``backbone`` when set);
        :func:`resolve_method` reads it back."""
        d = {"name": self.name, "method": self.kind, **to_dict(self.options)}
        if self.variant is not None:
            d["variant"] = self.variant.to_dict()
        if self.backbone is not None:
            d["backbone"] = self.backbone
        return d

    def key(self) -> dict[str, Any]:
        """What identifies the method's results (recorded with them)."""
        return self.to_dict()


def resolve_method(item: "str | Mapping[str, Any] | MethodSpec", *, where: str = "method") -> MethodSpec:
    """Turn a method name or a mapping into a :class:`MethodSpec` (the edge where names are resolved).

    Parameters
    ----------
    item : str or mapping
        A kind (``"frozen"``), or ``{name: ..., method: <kind>, <options>...}``
        (``method`` defaults to ``name`` when that is a kind). Fusion and auto
        options name their members/candidates the same way, recursively.
    where : str
        Prefix of error messages (the file and key the item came from).
    """
    if isinstance(item, MethodSpec):
        return item
    registry = _registry()
    if isinstance(item, str):
        if item not in registry and _embedder_alias(item) is None:
            raise ConfigError(f"{where}: unknown method {item!r}; known: {', '.join(registry)} "
                              "or an embedder name (soundlib embedders); or configure one: "
                              "{name: frozen_c, method: frozen, head: softmax}")
        item = {"name": item}
    if not isinstance(item, Mapping):
        raise ConfigError(f"{where}: a method is a name or a mapping with 'name' and 'method', got {item!r}")
    d = dict(item)
    name = d.pop("name", None)
    kind = d.pop("method", name)
    if isinstance(kind, str) and kind not in registry:
        alias = _embedder_alias(kind)
        if alias is not None:
            kind = alias["method"]
            d.setdefault("backbone", alias["backbone"])
            name = name or item.get("method")
    variant = d.pop("variant", None)
    backbone = d.pop("backbone", None)
    if not isinstance(name, str) or not name:
        name = kind
    if kind not in registry:
        raise ConfigError(f"{where}: method {name!r}: unknown method kind {kind!r}; known: {', '.join(registry)} "
                          "or an embedder name")
    options_cls = registry[kind].options
    here = f"{where}: method {name!r}"
    options: Any = from_mapping(options_cls, d, where=here)
    if hasattr(options, "resolve"):
        options = options.resolve(where=here)
    if variant is not None:
        from soundlib.pictures.variants import resolve_variant

        variant = resolve_variant(variant, where=f"{here}: variant")
    if backbone is not None and (not isinstance(backbone, str) or not backbone):
        raise ConfigError(f"{here}: backbone must be a name, handle or path, got {backbone!r}")
    return MethodSpec(name, kind, options, variant, backbone)


def build_method(spec: MethodSpec):
    """The runnable :class:`~soundlib.methods.base.Method` of a spec."""
    return _registry()[spec.kind].method(spec, spec.options)


def cache_units(spec: MethodSpec, variant: Any, backbone: str) -> "dict[str, CacheUnit]":
    """The cached features a method reads, as fill jobs that can run ahead of it (a sweep fills each once).

    Parameters
    ----------
    spec : MethodSpec
    variant : FeatureSpec
        The evaluation's variant (a member's own variant/backbone replace it for that member).
    backbone : str
        The evaluation's backbone handle.

    Returns
    -------
    dict
        :attr:`CacheUnit.key` -> :class:`CacheUnit`. Methods that cache nothing (``scratch``) and
        candidates that cannot run here give none.
    """
    units = _registry()[spec.kind].method.cache_units(spec, spec.variant or variant, spec.backbone or backbone)
    return {u.key: u for u in units}


from soundlib.methods.base import CacheUnit  # noqa: E402  (base imports nothing of this module at import time)
