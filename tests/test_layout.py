"""The package as its pipeline: no import circles, lower stages never import higher ones, no module
over 600 lines, no private name imported across packages (issue 19). Imports are read from the
source (every ``import`` and ``from ... import``, also inside functions), not from a running process."""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

import pytest

import soundlib

ROOT = Path(soundlib.__file__).parent

#: The stages in data-flow order: a module may import its own stage, the base modules and the stages
#: before it. Written once here; the README's layout table follows it.
STAGES = ("audio", "pictures", "embedders", "embedding", "methods", "evaluation", "models", "lab", "sweep")
#: Top-level modules every stage may use (they import no stage).
BASE = ("errors", "runtime", "atomic", "config", "text", "_compat")
#: Top-level modules above every stage.
TOP = ("cli", "demo", "results")
MAX_LINES = 600


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[tuple[str, str]]:
    """(imported module, imported name or '') for every soundlib import of one module."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    out: set[tuple[str, str]] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else [])) \
                if node.level else (node.module or "")
            if base.split(".")[0] != "soundlib":
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                out.add((sub, "") if sub in modules else (base, alias.name))
        elif isinstance(node, ast.Import):
            out |= {(a.name, "") for a in node.names if a.name.split(".")[0] == "soundlib"}
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: {m for m, _ in _imports(name, path, modules) if m in modules and m != name}
            for name, path in modules.items()}


def _stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "soundlib"


def _rank(stage: str) -> int:
    if stage in BASE or stage == "soundlib":
        return -1
    if stage in TOP:
        return len(STAGES)
    return STAGES.index(stage)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_every_top_level_module_and_package_is_placed():
    for entry in ROOT.iterdir():
        if entry.name.startswith((".", "__")) or entry.name in ("py.typed", "notebooks"):
            continue
        stage = entry.stem if entry.suffix == ".py" else entry.name
        if entry.is_dir() and not (entry / "__init__.py").exists():
            continue
        assert stage in STAGES + BASE + TOP, f"soundlib/{entry.name} belongs to no stage: add it to STAGES, BASE or TOP"


def test_no_import_circles():
    assert _cycles(_graph()) == []


def test_lower_stages_never_import_higher_ones():
    bad = [f"{a} ({_stage(a)}) imports {b} ({_stage(b)})" for a, deps in _graph().items() for b in deps
           if _rank(_stage(b)) > max(_rank(_stage(a)), -1) and not (_stage(a) in BASE and _stage(b) in BASE)]
    assert bad == []


def test_base_modules_import_no_stage():
    bad = [f"{a} imports {b}" for a, deps in _graph().items() if _stage(a) in BASE for b in deps
           if _stage(b) not in BASE and _stage(b) != "soundlib"]
    assert bad == []


def test_no_module_over_600_lines():
    long = {name: n for name, p in _modules().items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_no_private_name_imported_across_packages():
    modules = _modules()
    bad = []
    for name, path in modules.items():
        own = name.rsplit(".", 1)[0] if path.name != "__init__.py" else name
        for module, attr in _imports(name, path, modules):
            target_pkg = module.rsplit(".", 1)[0] if not (modules.get(module) and modules[module].name == "__init__.py") \
                else module
            private = attr.startswith("_") or module.rsplit(".", 1)[-1].startswith("_")
            if private and not attr.startswith("__") and target_pkg != own and module != "soundlib._compat":
                bad.append(f"{name} imports {module}{'.' + attr if attr else ''}")
    assert bad == []


def test_the_checker_sees_a_circle_and_an_upward_import():
    graph = {"soundlib.audio.a": {"soundlib.methods.b"}, "soundlib.methods.b": {"soundlib.audio.a"}}
    assert _cycles(graph) == [["soundlib.audio.a", "soundlib.methods.b"]]
    assert _rank(_stage("soundlib.methods.b")) > _rank(_stage("soundlib.audio.a"))


@pytest.mark.parametrize("old", sorted(__import__("soundlib._compat", fromlist=["MOVED"]).MOVED))
def test_old_module_paths_import_with_a_deprecation_warning(old):
    import importlib
    import sys

    from soundlib._compat import MOVED

    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=old.replace(".", r"\.") + " is deprecated"):
        alias = importlib.import_module(old)
    names = [n for t in MOVED[old] for n in getattr(importlib.import_module(t), "__all__",
                                                    [x for x in vars(importlib.import_module(t)) if not x.startswith("_")])]
    assert names, f"{MOVED[old]} export nothing"
    for n in names:
        assert getattr(alias, n) is getattr(next(importlib.import_module(t) for t in MOVED[old]
                                                 if hasattr(importlib.import_module(t), n)), n)
    with pytest.raises(AttributeError):
        alias.no_such_name  # noqa: B018


def test_old_package_and_submodule_paths():
    import importlib
    import sys

    for name in ("soundlib.synth", "soundlib.synth.corpus"):
        sys.modules.pop(name, None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from soundlib.synth import SynthConfig  # the 0.2 spelling
        corpus = importlib.import_module("soundlib.synth.corpus")
    from soundlib.audio.synth import SynthConfig as new

    assert SynthConfig is new and corpus.generate_corpus is importlib.import_module(
        "soundlib.audio.synth.corpus").generate_corpus
    with pytest.warns(DeprecationWarning, match="soundlib.audio.clips.load_audio"):
        from soundlib.audio import load_audio
    from soundlib.audio.clips import load_audio as real

    assert load_audio is real


def test_model_folder_recognition_agrees_with_the_format():
    from soundlib.evaluation.outputs import MODEL_INFO_FILE
    from soundlib.models.format import INFO_FILE

    assert MODEL_INFO_FILE == INFO_FILE
