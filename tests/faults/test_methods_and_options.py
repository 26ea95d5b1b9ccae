"""Every method name on every entry point, options checked where they are given, fusion weights in polynomial
time (issue cases: fusion/auto with no options gave AttributeError; scratch channels and birdnet threads failed
deep in TensorFlow/LiteRT; the late-fusion weight grid grew x5 per member)."""

from __future__ import annotations

import numpy as np
import pytest

from soundlib.errors import ConfigError
from soundlib.methods import build_method, method_kinds, resolve_method

from .conftest import FAST

NAMES = [*method_kinds(), "birdnet", "mn04", "yamnet", "speech"]  # kinds, and embedder names used as methods


def _no_strings_left(spec) -> None:
    for member in getattr(spec.options, "members", ()) + getattr(spec.options, "candidates", ()):
        assert not isinstance(member, str), f"{spec.name}: member {member!r} left unresolved"
        _no_strings_left(member)


@pytest.mark.parametrize("name", NAMES)
def test_every_method_name_with_no_options_resolves_on_every_entry_point(name, tmp_path, synth_corpus):
    from soundlib.cli import build_parser, method_from_args
    from soundlib.evaluation.evaluate import EvalConfig
    from soundlib.lab.notebook import eval_config
    from soundlib.sweep import load_sweep_config

    specs = [resolve_method(name)]
    args = build_parser().parse_args(["evaluate", str(synth_corpus), "--method", name, "--out", str(tmp_path)])
    specs.append(method_from_args(args))
    specs.append(EvalConfig(method=name).method)
    specs.append(eval_config(variant="mel", method=name).method)
    yaml = tmp_path / "s.yaml"
    yaml.write_text(f"dataset: {synth_corpus}\nvariants: [mel]\nmethods: [{name}]\n")
    specs.append(load_sweep_config(yaml).methods[0])
    for spec in specs:
        _no_strings_left(spec)
        build_method(spec)
    assert len({repr(s.to_dict()) for s in specs}) == 1  # the same method whichever door it came in by


def test_fusion_with_no_options_runs_from_the_command_line(synth_corpus, tiny_backbone, mel32, tmp_path, capsys):
    from soundlib.cli import main

    code = main(["evaluate", str(synth_corpus), "--method", "fusion", "--backbone", str(tiny_backbone), *FAST,
                 "--out", str(tmp_path / "ev")])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "Traceback" not in out.err and "fusion" in out.out


@pytest.mark.parametrize("bad, words", [
    ({"method": "scratch", "channels": [8] * 9}, "conv blocks"),
    ({"method": "scratch", "channels": [1_000_000]}, "up to 1024 filters"),
    ({"method": "birdnet", "threads": -5}, "threads"),
    ({"method": "birdnet", "threads": 100000}, "threads"),
    ({"method": "mn04", "threads": -1}, "threads"),
    ({"method": "scratch", "budget_seconds": -1}, "budget_seconds"),
    ({"method": "auto", "tolerance": -1}, "tolerance"),
])
def test_options_are_checked_when_given_not_deep_in_a_runtime(bad, words):
    with pytest.raises(ConfigError, match=words):
        resolve_method(bad, where="sweep.yaml")


def test_late_fusion_weight_search_grows_polynomially(monkeypatch):
    from soundlib.methods import fusion

    calls = []
    real = fusion.accuracy
    monkeypatch.setattr(fusion, "accuracy", lambda p, y: calls.append(1) or real(p, y))
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 300)
    for n in (4, 8, 12):
        calls.clear()
        probas = [rng.dirichlet(np.ones(5), size=300).astype(np.float32) for _ in range(n)]
        weights, acc = fusion.best_weights(probas, y)
        assert len(weights) == n and abs(sum(weights) - 1) < 1e-9 and 0 <= acc <= 1
        assert len(calls) <= n * fusion.GREEDY_STEPS + 2, (n, len(calls))  # the old grid: 1,366 at n = 12
    good = np.eye(5, dtype=np.float32)[y] * 0.8 + 0.04
    weights, acc = fusion.best_weights([*probas[:11], good], y)
    assert acc == 1.0 and weights[-1] == max(weights)  # the informative member gets the weight
