"""The module paths of soundlib 0.2 (``soundlib.infer``, ``soundlib.data``, ...) as thin aliases.

soundlib 0.3 groups its modules by pipeline stage (``soundlib.audio``, ``soundlib.pictures``,
``soundlib.embedders``, ...). Each 0.2 path stays importable for one minor version, without a file
of its own: a finder on ``sys.meta_path`` answers the old names from :data:`MOVED`. Importing one
emits a :class:`DeprecationWarning` that names the new module; its attributes are read from there
(the same objects, not copies). The aliases go in soundlib 0.4.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType
from typing import Any

__all__ = ["MOVED", "install"]

#: 0.2 module path -> the module(s) that hold its names now (several where a module was split).
MOVED: dict[str, tuple[str, ...]] = {
    "soundlib.data": ("soundlib.audio.datasets", "soundlib.audio.loaders"),
    "soundlib.folds": ("soundlib.audio.folds",),
    "soundlib.download": ("soundlib.audio.download",),
    "soundlib.hashes": ("soundlib.audio.hashes",),
    "soundlib.synth": ("soundlib.audio.synth",),
    "soundlib.variants": ("soundlib.pictures.variants",),
    "soundlib.features": ("soundlib.pictures.features",),
    "soundlib.merge": ("soundlib.pictures.merge",),
    "soundlib.featurize": ("soundlib.pictures.featurize",),
    "soundlib._efficientnet_lite": ("soundlib.embedders.nets.efficientnet_lite",),
    "soundlib._efficientat_mn": ("soundlib.embedders.nets.efficientat_mn", "soundlib.embedders.nets.efficientat_weights"),
    "soundlib._yamnet": ("soundlib.embedders.nets.yamnet", "soundlib.embedders.nets.yamnet_weights"),
    "soundlib._torch_checkpoint": ("soundlib.embedders.nets.torch_checkpoint",),
    "soundlib._audioset_labels": ("soundlib.embedders.nets.audioset_labels",),
    "soundlib.backbones": ("soundlib.embedders.backbones",),
    "soundlib.litert": ("soundlib.embedders.litert",),
    "soundlib.derived": ("soundlib.embedders.derived",),
    "soundlib.embed": ("soundlib.embedding.embed",),
    "soundlib.cache": ("soundlib.embedding.cache",),
    "soundlib.head": ("soundlib.methods.head",),
    "soundlib.train": ("soundlib.methods.train", "soundlib.models.train"),
    "soundlib.infer": ("soundlib.models.format", "soundlib.models.export", "soundlib.models.load",
                       "soundlib.models.label", "soundlib.models.litert_runner"),
    "soundlib.modelcard": ("soundlib.models.card",),
    "soundlib.tag": ("soundlib.models.tag",),
    "soundlib.events": ("soundlib.models.events",),
    "soundlib.evaluate": ("soundlib.evaluation.evaluate", "soundlib.models.train"),
    "soundlib.metrics": ("soundlib.evaluation.metrics",),
    "soundlib.stats": ("soundlib.evaluation.stats",),
    "soundlib.outputs": ("soundlib.evaluation.outputs",),
    "soundlib.plots": ("soundlib.evaluation.plots",),
    "soundlib.notebook": ("soundlib.lab.notebook",),
    "soundlib.trials": ("soundlib.lab.trials",),
    "soundlib.embedmap": ("soundlib.lab.embedmap",),
}
#: 0.2 paths that were packages: their submodules (``soundlib.synth.corpus``) are aliased too.
_PACKAGES = {"soundlib.synth": "soundlib.audio.synth"}


class _Alias(ModuleType):
    """A 0.2 module path whose attributes come from the modules that hold them now."""

    def __init__(self, name: str, targets: tuple[str, ...]) -> None:
        super().__init__(name, f"Deprecated alias of {', '.join(targets)} (moved in soundlib 0.3).")
        self.__dict__["_targets"] = targets

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        for name in self.__dict__["_targets"]:
            module = importlib.import_module(name)
            if hasattr(module, attr):
                return getattr(module, attr)
        raise AttributeError(f"module {self.__name__!r} (now {', '.join(self._targets)}) has no attribute {attr!r}")

    def __dir__(self) -> list[str]:
        return sorted({n for t in self._targets for n in dir(importlib.import_module(t)) if not n.startswith("__")})


def _targets(fullname: str) -> tuple[str, ...] | None:
    if fullname in MOVED:
        return MOVED[fullname]
    for old, new in _PACKAGES.items():
        if fullname.startswith(old + "."):
            return (new + fullname[len(old):],)
    return None


class _AliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path, target=None):  # noqa: ANN001 (importlib's signature)
        targets = _targets(fullname)
        if targets is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, self, is_package=fullname in _PACKAGES)

    def create_module(self, spec):  # noqa: ANN001
        targets = _targets(spec.name)
        assert targets is not None
        warnings.warn(f"{spec.name} is deprecated: it moved to {' and '.join(targets)} in soundlib 0.3 "
                      "(the old path goes in 0.4)", DeprecationWarning, stacklevel=2)
        module = _Alias(spec.name, targets)
        if spec.name in _PACKAGES:
            module.__path__ = []
        return module

    def exec_module(self, module) -> None:  # noqa: ANN001
        return None


def install() -> None:
    """Put the finder on ``sys.meta_path`` once (``soundlib/__init__.py`` calls it)."""
    if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
        sys.meta_path.append(_AliasFinder())
