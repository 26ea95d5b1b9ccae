"""The waveform LiteRT model of an exported model: audio in, class probabilities out, the front-end inside.

One ``.tflite`` that MediaPipe's ``AudioClassifier`` (``mediapipe.tasks.python.audio``) runs as it is:

* input: float32 ``[1, n]``, one window of mono audio at the model's sample rate in [-1, 1], where
  ``n`` is the model's window (mn04: the variant's duration at 32 kHz; YAMNet: at 16 kHz; MFCC and
  picture models: at the variant's rate). MediaPipe cuts longer audio into buffers of ``n`` samples
  (no overlap; the last one filled with silence) and resamples to the rate the metadata names;
* output: float32 ``[1, n_classes]`` probabilities (they sum to 1), in ``labels.txt``'s order;
* metadata (:mod:`soundlib.models.tflite_metadata`): the input's sample rate and channels, the labels.

Inside: the front-end of :mod:`soundlib.models.tflite_graphs` (mn04's log-mel, YAMNet's frames and
log-mel, the MFCC statistics, or the variant's picture: a spectrogram with its colormap, a waveform plot,
stacked or merged), then the network and the head: a model on an audio embedder's logistic head
(standardisation, dense, softmax), or a picture model's Keras network. Built with TensorFlow, converted
with LiteRT's built-in ops only, and checked against soundlib's own prediction on seeded probe windows
before it is kept.

:func:`export_tflite` is ``soundlib export MODEL --tflite OUT``; :func:`waveform_copy` writes the same
model beside every exported model (``model_waveform.tflite``, recorded and checksummed in the manifest;
a conversion that fails only warns). Models that cannot be expressed raise :class:`ModelError` saying why
(:func:`unsupported`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from soundlib.audio.hashes import sha256_file
from soundlib.errors import ModelError, warn
from soundlib.models.format import WAVEFORM_TFLITE_FILE
from soundlib.pictures.variants import FeatureSpec

__all__ = ["TOLERANCES", "WAVEFORM_TFLITE_ENV", "unsupported", "waveform_copy", "export_tflite", "build_waveform_model"]

#: Largest difference between the waveform model's and soundlib's probabilities accepted, per front-end.
#: Audio embedders: float32 DFTs against numpy's float64 FFTs. Pictures: besides, a pixel whose value falls
#: on the other side of a colormap step (the picture is quantised to 256 levels) after a float32 rounding.
TOLERANCES = {"mn04": 1e-3, "yamnet": 1e-3, "mfcc": 1e-3, "picture": 2e-2}

#: ``0`` skips the waveform model at export (``soundlib export --tflite`` still makes one).
WAVEFORM_TFLITE_ENV = "SOUNDLIB_WAVEFORM_TFLITE"

_EMBEDDERS = ("mn04", "yamnet", "mfcc")


def unsupported(*, embedder: str | None = None, spec: FeatureSpec | None = None, options: Mapping | None = None
                ) -> str | None:
    """Why a model on ``embedder`` (a model on an audio embedder) or on ``spec``'s pictures has no waveform
    model (``None``: it has one)."""
    from soundlib.models.tflite_graphs import picture_unsupported

    if embedder is not None:
        if embedder == "birdnet":
            return ("models on BirdNET have no waveform model: BirdNET's network is here only as its published LiteRT "
                    "file (its own spectrogram layers and weights, CC BY-NC-SA 4.0), not as TensorFlow ops a "
                    "front-end and a head can be joined to")
        if embedder not in _EMBEDDERS:
            return (f"models on the embedder {embedder!r} have no waveform model (soundlib builds one on "
                    f"{', '.join(_EMBEDDERS)} and on spectrogram variants' pictures)")
        if embedder == "mfcc" and dict(options or {}).get("features", "basic") != "basic":
            return "only the 'basic' MFCC statistics have a waveform model"
        return None
    return picture_unsupported(spec) if spec is not None else None


def _probes(n: int, sr: int) -> list[np.ndarray]:
    """Seeded probe windows: tones in noise over the whole window, and a clip that ends after 40 % of it."""
    rng = np.random.default_rng(0)
    t = np.arange(n) / sr
    full = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 2500 * t * (1 + t))
            + 0.05 * rng.standard_normal(n)).astype(np.float32)
    short = 0.5 * rng.standard_normal(max(1, int(0.4 * n))).astype(np.float32)
    return [full, short]


def _convert(fn: Callable[[Any], Any], n: int) -> bytes:
    """``fn`` ((n,) waveform tensor -> (1, C) probabilities) as a LiteRT flatbuffer with a [1, n] input."""
    from soundlib.runtime import filtered_stderr, import_tf

    tf, _ = import_tf()

    @tf.function(input_signature=[tf.TensorSpec([1, n], tf.float32, name="audio_clip")])
    def classify(audio_clip):
        return {"probabilities": fn(tf.reshape(audio_clip, [n]))}

    converter = tf.lite.TFLiteConverter.from_concrete_functions([classify.get_concrete_function()])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    with filtered_stderr(re.compile(""), stdout=True):  # the converter reports every step of its work
        return converter.convert()


def _run(blob: bytes, window: np.ndarray) -> np.ndarray:
    """The waveform model's probabilities of one window (padded with silence to its length)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        from soundlib.runtime import import_tf

        Interpreter = import_tf()[0].lite.Interpreter  # noqa: N806
    from soundlib.runtime import filtered_stderr

    with filtered_stderr():
        it = Interpreter(model_content=blob, num_threads=max(1, min(4, os.cpu_count() or 1)))
        it.allocate_tensors()
    inp = it.get_input_details()[0]
    n = int(inp["shape"][-1])
    x = np.zeros((1, n), np.float32)
    x[0, :min(n, len(window))] = window[:n]
    it.set_tensor(inp["index"], x)
    it.invoke()
    return np.array(it.get_tensor(it.get_output_details()[0]["index"])[0])


def build_waveform_model(*, labels: Sequence[str], spec: FeatureSpec, name: str, license: str,
                         embedder: Any = None, options: Mapping | None = None, head: Any = None,
                         keras_model: Any = None, reference: Callable[[np.ndarray], np.ndarray]
                         ) -> tuple[bytes, dict]:
    """The waveform model of a model on an audio embedder (``embedder``, ``head``) or of a picture model
    (``keras_model``: pictures (N, H, W, 3) in [0, 1] -> probabilities), with its metadata, checked against
    ``reference`` (one window of audio as soundlib labels it -> probabilities).

    Returns the flatbuffer and what the manifest records of it (rate, samples, difference measured).

    Raises
    ------
    ModelError
        The model cannot be expressed (see :func:`unsupported`), or its waveform model disagrees with
        ``reference`` by more than :data:`TOLERANCES` allows.
    """
    from soundlib.models import tflite_graphs as G
    from soundlib.models.tflite_metadata import with_metadata
    from soundlib.runtime import import_tf

    if embedder is not None:
        why = unsupported(embedder=embedder.name, options=options)
        window = embedder.window(spec)
        sr, n, front = window.sr, window.n_samples, embedder.name
    else:
        why = unsupported(spec=spec)
        sr, n, front = spec.sr, spec.n_samples, "picture"
    if why:
        raise ModelError(why)
    tf, _ = import_tf()
    if embedder is not None:
        if front == "mn04":
            from soundlib.embedders.nets.efficientat_weights import checkpoint_path

            embed = G.mn04_embedding(tf, checkpoint_path())
        elif front == "yamnet":
            embed = G.yamnet_embedding(tf, n)
        else:
            embed = G.mfcc_statistics(tf, sr=sr, n=n, n_fft=getattr(window, "n_fft", 2048),
                                      hop_length=getattr(window, "hop_length", 512), n_mfcc=embedder.n_mfcc,
                                      features=embedder.features)
        to_probabilities = G.logistic_head(tf, head)

        def fn(x):
            return to_probabilities(embed(x))
    else:
        picture = G.spectrogram_picture(tf, spec)

        def fn(x):
            return keras_model(picture(x), training=False)

    try:
        blob = _convert(fn, n)
    except Exception as exc:  # TensorFlow raises many kinds
        raise ModelError(f"cannot convert the model to a waveform LiteRT model ({type(exc).__name__}: "
                         f"{str(exc)[:300]})") from None
    diff = 0.0
    for probe in _probes(n, sr):
        want = np.asarray(reference(probe), np.float64)
        got = _run(blob, probe)
        diff = max(diff, float(np.max(np.abs(got - want))) if got.shape == want.shape else float("inf"))
    if not diff <= TOLERANCES[front]:
        raise ModelError(f"the waveform model's probabilities differ from soundlib's by {diff:.2g} on the probe "
                         f"windows (more than {TOLERANCES[front]:g} for {front})")
    blob = with_metadata(blob, labels=labels, sample_rate=sr, name=name, version="1", license=license,
                         description=f"{len(labels)} sound classes from {n / sr:g}-s windows of {sr}-Hz mono audio "
                                     f"({front} front-end inside); soundlib model")
    return blob, {"file": WAVEFORM_TFLITE_FILE, "sample_rate": int(sr), "samples": int(n), "front_end": front,
                  "input": f"float32 [1, {n}] mono waveform at {sr} Hz in [-1, 1]",
                  "max_abs_difference": diff}


def _embedder_reference(embedder: Any, head: Any, spec: FeatureSpec) -> Callable[[np.ndarray], np.ndarray]:
    """One window -> probabilities, as a loaded model on an audio embedder labels it."""
    loaded = embedder.load()
    prepare = getattr(embedder, "prepare_window", None)
    own = embedder.window(spec)

    def reference(w: np.ndarray) -> np.ndarray:
        x = prepare(w, own)[None] if prepare is not None else w[None]
        return head.predict_proba(loaded(x, batch_size=1))[0]

    return reference


def _picture_reference(label_pictures: Callable[[np.ndarray], np.ndarray], spec: FeatureSpec
                       ) -> Callable[[np.ndarray], np.ndarray]:
    """One window -> probabilities, as soundlib labels it: padded as the variant pads, rendered, labelled
    (``label_pictures``: uint8 pictures (N, H, W, 3) -> probabilities)."""
    from soundlib.audio.clips import pad_to
    from soundlib.pictures.features import render

    def reference(w: np.ndarray) -> np.ndarray:
        return np.asarray(label_pictures(render(pad_to(w, spec.n_samples, policy=spec.pad), spec)[None]))[0]

    return reference


def waveform_copy(model_dir: Path, *, labels: Sequence[str], spec: FeatureSpec, embedder: Any = None,
                  options: Mapping | None = None, head: Any = None, keras_model: Any = None,
                  license: str = "") -> dict | None:
    """Write ``model_dir/model_waveform.tflite`` at export; its manifest entry, or ``None`` (with a warning
    when it was tried and failed; quietly when the model has none or ``$SOUNDLIB_WAVEFORM_TFLITE=0``)."""
    if os.environ.get(WAVEFORM_TFLITE_ENV, "").strip() == "0":
        return None
    if unsupported(embedder=getattr(embedder, "name", None), spec=None if embedder is not None else spec,
                   options=options):
        return None
    from soundlib.atomic import atomic_path

    try:
        reference = (_embedder_reference(embedder, head, spec) if embedder is not None else _picture_reference(
            lambda pics: keras_model(pics.astype(np.float32) / 255.0, training=False), spec))
        blob, entry = build_waveform_model(labels=labels, spec=spec, name=Path(model_dir).name, license=license,
                                           embedder=embedder, options=options, head=head, keras_model=keras_model,
                                           reference=reference)
        out = Path(model_dir) / WAVEFORM_TFLITE_FILE
        with atomic_path(out) as tmp:
            tmp.write_bytes(blob)
    except Exception as exc:  # a converter failure, an op LiteRT lacks: the model itself is still exported
        warn(f"{Path(model_dir).name}: no waveform LiteRT model ({type(exc).__name__}: {str(exc)[:300]}); the "
             f"model is exported without {WAVEFORM_TFLITE_FILE}")
        return None
    return {**entry, "sha256": sha256_file(out)}


def export_tflite(model_dir: str | os.PathLike, out: str | os.PathLike, *, overwrite: bool = False) -> dict:
    """``soundlib export MODEL --tflite OUT``: the exported model ``model_dir`` as one waveform LiteRT model.

    The model is loaded (checksums verified), its waveform model built and checked against the loaded
    model's own probabilities, and written to ``out`` atomically.

    Returns
    -------
    dict
        ``file``, ``sample_rate``, ``samples`` (the input length), ``front_end``, ``max_abs_difference``,
        ``labels`` (how many), ``sha256``.

    Raises
    ------
    ModelError
        Not a model, a model without a waveform graph (the message says why), ``out`` exists and is not a
        ``.tflite`` file (or exists and ``overwrite`` is false), or the conversion fails.
    """
    from soundlib.atomic import atomic_path
    from soundlib.models.load import load_model

    out = Path(out)
    if out.suffix.lower() != ".tflite":
        raise ModelError(f"--tflite {out}: expected a file name ending in .tflite")
    if out.is_dir():
        raise ModelError(f"--tflite {out}: is a folder; name the .tflite file to write")
    if out.exists() and not overwrite:
        raise ModelError(f"--tflite {out}: exists; pass --overwrite to replace it")
    model = load_model(model_dir)
    record = model.info.get("embedder") if model.info.get("kind") == "embedder" else None
    if record is not None:
        why = unsupported(embedder=str(record.get("name")), options=record.get("options"))
    else:
        why = unsupported(spec=model.spec)
    if why:
        raise ModelError(f"{model.path}: {why}")
    license = "; ".join(str(x) for x in [(record or {}).get("license")] if x)
    kwargs: dict[str, Any] = {}
    reference: Callable[[np.ndarray], np.ndarray]
    if record is not None:
        from soundlib.embedders import EmbedderOptions, resolve_embedder
        from soundlib.methods.heads import LogisticHead
        from soundlib.models.format import HEAD_FILE
        from soundlib.models.load import _read_head

        kwargs["embedder"] = resolve_embedder(str(record["name"]), EmbedderOptions(**record.get("options", {})))
        kwargs["options"] = record.get("options")
        kwargs["head"] = LogisticHead(*_read_head(model.path / HEAD_FILE, len(model.labels)))  # checked, calibrated

        reference = lambda w: model.predict_windows(w[None])[0]  # noqa: E731
    else:
        kwargs["keras_model"] = _saved_model(model.path)
        reference = _picture_reference(model.predict_pictures, model.spec)
    blob, entry = build_waveform_model(labels=model.labels, spec=model.spec, name=model.path.name, license=license,
                                       reference=reference, **kwargs)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        tmp.write_bytes(blob)
    return {**entry, "file": str(out), "labels": len(model.labels), "sha256": sha256_file(out)}


def _saved_model(path: Path) -> Callable[[Any], Any]:
    """A picture model's SavedModel as a TF callable: pictures (N, H, W, 3) in [0, 1] -> probabilities."""
    from soundlib.models.format import SAVED_MODEL
    from soundlib.runtime import import_hub, import_tf

    tf, _ = import_tf()
    import_hub()  # registers ops some hub modules use
    try:
        module = tf.saved_model.load(str(path / SAVED_MODEL))
    except Exception as exc:
        raise ModelError(f"{path / SAVED_MODEL}: could not load the SavedModel ({type(exc).__name__}: "
                         f"{str(exc)[:200]})") from None
    fn = None if callable(module) else module.signatures["serving_default"]

    def call(x: Any, training: bool = False) -> Any:
        return module(x, training=False) if fn is None else next(iter(fn(x).values()))

    return call
