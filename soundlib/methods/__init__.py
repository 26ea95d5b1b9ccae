"""Learning methods, compared under one protocol.

======================  ================================================================
``frozen``              embeddings of the pictures by a frozen pretrained image backbone,
                        standardized, logistic-regression head (C chosen on validation)
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
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from ..config import from_mapping, to_dict
from ..errors import ConfigError

__all__ = ["MethodSpec", "METHOD_KINDS", "DEFAULT_METHOD", "resolve_method", "build_method", "method_kinds",
           "cache_units"]

DEFAULT_METHOD = "frozen"


def _registry() -> dict[str, tuple[type, type]]:
    """kind -> (Method class, options dataclass); imported lazily (TensorFlow stays unimported)."""
    from .auto import AutoMethod, AutoOptions
    from .birdnet import BirdnetMethod, BirdnetOptions
    from .finetune import FinetuneMethod, FinetuneOptions
    from .frozen import FrozenMethod, FrozenOptions
    from .fusion import FusionMethod, FusionOptions
    from .mfcc import MfccMethod, MfccOptions
    from .scratch import ScratchMethod, ScratchOptions

    return {
        "frozen": (FrozenMethod, FrozenOptions),
        "finetune": (FinetuneMethod, FinetuneOptions),
        "scratch": (ScratchMethod, ScratchOptions),
        "mfcc": (MfccMethod, MfccOptions),
        "birdnet": (BirdnetMethod, BirdnetOptions),
        "fusion": (FusionMethod, FusionOptions),
        "auto": (AutoMethod, AutoOptions),
    }


#: The method kinds, in the order tables list them.
METHOD_KINDS = ("frozen", "finetune", "scratch", "mfcc", "birdnet", "fusion", "auto")


def method_kinds() -> tuple[str, ...]:
    """The kinds :func:`resolve_method` accepts."""
    return METHOD_KINDS


@dataclasses.dataclass(frozen=True)
class MethodSpec:
    """A named, configured method.

    Attributes
    ----------
    name : str
        Its row in results tables and its folder in sweeps.
    kind : str
        One of :data:`METHOD_KINDS`.
    options : dataclass
        The kind's options (defaults when built from a bare name).

    variant : FeatureSpec or None
        The pictures/windows this method uses (``None``: the evaluation's variant).
    backbone : str or None
        The image backbone handle (``None``: the evaluation's backbone).
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
        if item not in registry:
            raise ConfigError(f"{where}: unknown method {item!r}; known: {', '.join(METHOD_KINDS)} "
                              "(or configure one: {name: frozen_c, method: frozen, head: softmax})")
        _, options = registry[item]
        return MethodSpec(item, item, options())
    if not isinstance(item, Mapping):
        raise ConfigError(f"{where}: a method is a name or a mapping with 'name' and 'method', got {item!r}")
    d = dict(item)
    name = d.pop("name", None)
    kind = d.pop("method", name)
    variant = d.pop("variant", None)
    backbone = d.pop("backbone", None)
    if not isinstance(name, str) or not name:
        name = kind
    if kind not in registry:
        raise ConfigError(f"{where}: method {name!r}: unknown method kind {kind!r}; known: {', '.join(METHOD_KINDS)}")
    _, options_cls = registry[kind]
    here = f"{where}: method {name!r}"
    options = from_mapping(options_cls, d, where=here)
    if hasattr(options, "resolve"):
        options = options.resolve(where=here)
    if variant is not None:
        from ..variants import resolve_variant

        variant = resolve_variant(variant, where=f"{here}: variant")
    if backbone is not None and (not isinstance(backbone, str) or not backbone):
        raise ConfigError(f"{here}: backbone must be a name, handle or path, got {backbone!r}")
    return MethodSpec(name, kind, options, variant, backbone)


def build_method(spec: MethodSpec):
    """The runnable :class:`~soundlib.methods.base.Method` of a spec."""
    cls, _ = _registry()[spec.kind]
    return cls(spec, spec.options)


def cache_units(spec: MethodSpec, variant: Any, backbone: str) -> dict[str, dict[str, Any]]:
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
        Unit key -> ``{"method": MethodSpec, "variant": FeatureSpec, "backbone": str}``: preparing that
        method with that variant and backbone fills the unit's cache entries. Methods that cache nothing
        (``scratch``) and candidates that cannot run here give none.
    """
    import json

    variant = spec.variant or variant
    backbone = spec.backbone or backbone
    vkey = json.dumps(variant.to_dict(), sort_keys=True) if not variant.resolved else variant.key()
    if spec.kind in ("frozen", "finetune"):
        # finetune's head starts from the last layer's average-pooled embeddings
        layer, pooling = (spec.options.layer, spec.options.pooling) if spec.kind == "frozen" else ("head", "avg")
        leaf = resolve_method({"name": "frozen", "method": "frozen", "layer": layer, "pooling": pooling})
        return {f"backbone|{backbone}|{layer}|{pooling}|{vkey}": {"method": leaf, "variant": variant,
                                                                  "backbone": backbone}}
    if spec.kind == "mfcc":
        o = spec.options
        return {f"mfcc|{o.features}|{o.n_mfcc}|{vkey}": {"method": spec, "variant": variant, "backbone": backbone}}
    if spec.kind == "birdnet":
        from .birdnet import birdnet_available

        if birdnet_available():
            return {}
        return {f"birdnet|{spec.options.hop}|{spec.options.pad}": {"method": spec, "variant": variant,
                                                                   "backbone": backbone}}
    units: dict[str, dict[str, Any]] = {}
    for member in getattr(spec.options, "members", ()) + getattr(spec.options, "candidates", ()):
        units.update(cache_units(member, variant, backbone))
    return units
