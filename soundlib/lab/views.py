"""What a method embeds with, and what its network sees: the notebooks' views of any embedder.

A method's embeddings come from one embedder (:mod:`soundlib.embedders`): a picture backbone that
embeds the variant's pictures, or an audio network (``mn04``, ``yamnet``, ``speech``, ``birdnet``) or
hand-made features (``mfcc``) that take the audio windows. :func:`method_embedder` names the one a
method used (for ``auto``, the candidate it picked on a fold, read from the run's ``metrics.json``),
:func:`describe_method` says it in one line for a notebook's header, and :func:`model_input`
returns what that embedder's network is given for a clip, as ``(title, array)``: the picture for a
picture backbone, mn04's log-mel, YAMNet's log-mel patches, the speech model's mel frames, the MFCCs.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

__all__ = ["MethodEmbedder", "method_embedder", "model_embedder", "window_text", "describe_method",
           "describe_model", "no_map_reason", "model_input"]


@dataclasses.dataclass(frozen=True)
class MethodEmbedder:
    """The embedder a method used, and the variant whose windows it embeds.

    Attributes
    ----------
    method : str
        The method's name (``mn04``, ``frozen``, ``auto``...).
    embedder : soundlib.embedders.Embedder
    spec : soundlib.pictures.variants.FeatureSpec
        The variant it was given (its own, for a candidate or member that names one).
    via : str
        How it was reached (``"auto picked mn04"``), empty for a method that embeds by itself.
    trained : bool
        The method trains the network further (``finetune``): these are the pretrained embeddings,
        not the method's own.
    """

    method: str
    embedder: Any
    spec: Any
    via: str = ""
    trained: bool = False

    @property
    def name(self) -> str:
        return str(self.embedder.name)

    @property
    def picture(self) -> bool:
        """Whether it embeds the variant's pictures (not audio windows)."""
        return self.embedder.modality == "picture"

    def window(self):
        """Its windows for :attr:`spec` (:meth:`~soundlib.embedders.Embedder.window`)."""
        return self.embedder.window(self.spec)

    def describe(self) -> str:
        """``"mn04 (4-s windows at 32 kHz every 2 s, short clips as they are)"``."""
        short = self.name if len(self.name) <= 48 else "..." + self.name[-45:]
        return f"{short} ({window_text(self)})"


def window_text(me: MethodEmbedder) -> str:
    """Its windows in words (duration, sample rate, hop; the picture size for a picture embedder)."""
    if not getattr(me.spec, "resolved", True):
        return (f"{me.spec.name} windows, their length chosen from the clips (duration: {me.spec.duration})"
                + (f", {me.spec.width}x{me.spec.height} pictures" if me.picture else ""))
    w = me.window()
    seconds = w.n_samples / w.sr
    text = f"{seconds:g}-s windows at {w.sr / 1000:g} kHz every {w.hop_seconds:g} s"
    if me.picture:
        return f"{me.spec.width}x{me.spec.height} {me.spec.name} pictures of {text}"
    if w.pad == "none" or getattr(me.embedder, "pads_short_clips", True) is False:
        text += ", short clips as they are"
    return text


def _resolve_spec(spec: Any, dataset: Any) -> Any:
    if spec is None or getattr(spec, "resolved", True) or dataset is None:
        return spec
    from soundlib.methods.base import clip_durations
    from soundlib.pictures.variants import resolve_duration

    return resolve_duration(spec, clip_durations(dataset))[0]


def _of_spec(method: Any, spec: Any, backbone: str, choice: Mapping[str, Any] | None, via: str) -> MethodEmbedder | None:
    """The embedder of one :class:`~soundlib.methods.MethodSpec` (recursing into auto's pick)."""
    from soundlib.embedders import EmbedderOptions, resolve_embedder

    spec = method.variant or spec
    backbone = method.backbone or backbone
    if method.kind == "frozen":
        return MethodEmbedder(method.name, resolve_embedder(str(backbone), method.options.embedder_options()), spec, via)
    if method.kind == "mfcc":
        return MethodEmbedder(method.name, method.options.embedder(), spec, via)
    if method.kind == "finetune":
        return MethodEmbedder(method.name, resolve_embedder(str(backbone), EmbedderOptions()), spec, via, trained=True)
    if method.kind == "auto":
        picked = (choice or {}).get("picked")
        names = {c.name: c for c in method.options.candidates}
        if picked not in names:  # a fusion (several models): its best single candidate, as auto exports
            picked = (choice or {}).get("exported")
            if picked not in names:
                return None
            via = f"{method.name} picked {(choice or {}).get('picked')} (a fusion); its best single candidate {picked}"
        else:
            via = f"{method.name} picked {picked}"
        return _of_spec(names[picked], spec, backbone, None, via)
    return None  # scratch (its own small network), fusion (several embedders)


def method_embedder(config: Any, *, run_dir: str | os.PathLike | None = None, choice: Mapping[str, Any] | None = None,
                    dataset: Any = None) -> MethodEmbedder | None:
    """The embedder whose embeddings a method's head was trained on, or ``None`` when there is no one
    (``scratch`` trains its own network; a ``fusion`` joins several; ``auto`` before it has picked).

    Parameters
    ----------
    config : soundlib.evaluation.evaluate.EvalConfig
        The run's configuration (method, backbone, variant).
    run_dir : path-like, optional
        A training run's folder: what ``auto`` picked is read from its ``metrics.json``.
    choice : mapping, optional
        The run's ``choice`` (instead of ``run_dir``).
    dataset : soundlib.audio.datasets.Dataset, optional
        Resolves a variant's ``duration: fit``/``auto`` from the clips, as the evaluation does.
    """
    if choice is None and run_dir is not None:
        from soundlib.evaluation.metrics import RunMetrics

        m = RunMetrics.read(run_dir)
        choice = m.choice if m is not None else None
        if m is not None and (m.duration or {}).get("seconds") and not config.spec.resolved:
            config = dataclasses.replace(config, spec=config.spec.replace(duration=float(m.duration["seconds"])))
    found = _of_spec(config.method, config.spec, config.backbone, choice, "")
    if found is not None and dataset is not None:
        found = dataclasses.replace(found, spec=_resolve_spec(found.spec, dataset))
    return found


def model_embedder(model: Any) -> MethodEmbedder | None:
    """The audio embedder an exported model (:class:`~soundlib.models.load.LoadedModel`) runs, from its
    checksummed ``embedder.json``; ``None`` for a model on pictures."""
    if getattr(model, "modality", "picture") != "waveform":
        return None
    import json

    from soundlib.embedders import EmbedderOptions, resolve_embedder
    from soundlib.models.format import EMBEDDER_FILE

    record = json.loads((Path(model.path) / EMBEDDER_FILE).read_text(encoding="utf-8"))
    embedder = resolve_embedder(record["name"], EmbedderOptions(**(record.get("options") or {})))
    method = model.info.get("method")
    name = method.get("name", record["name"]) if isinstance(method, Mapping) else record["name"]
    return MethodEmbedder(str(name), embedder, model.spec)


def describe_method(config: Any, *, dataset: Any = None) -> str:
    """One line on a notebook's method: its name, the embedder and its windows (for ``auto``, its
    candidates and theirs: which one it uses is picked per fold)."""
    method = config.method
    if method.kind == "auto":
        from soundlib.errors import SoundlibError
        from soundlib.methods import build_method

        parts = []
        for c in method.options.candidates:
            try:
                why = build_method(c).unavailable()
            except SoundlibError as exc:
                why = str(exc)
            if why:
                parts.append(f"{c.name} (left out here: {why.splitlines()[0][:80]})")
                continue
            me = _of_spec(c, config.spec, config.backbone, None, "")
            me = dataclasses.replace(me, spec=_resolve_spec(me.spec, dataset)) if me is not None else None
            parts.append(f"{c.name} on {me.describe()}" if me is not None else c.name)
        fusions = ", and their fusions" if method.options.fusions else ""
        return (f"method {method.name}: picks per fold, by grouped cross-validation on the training folds, "
                f"among {'; '.join(parts)}{fusions}")
    me = method_embedder(config, dataset=dataset)
    if me is None:
        what = {"scratch": "a small CNN trained from scratch on the variant's log-mel",
                "fusion": "a fusion of " + ", ".join(m.name for m in getattr(method.options, "members", ()))}
        return f"method {method.name}: {what.get(method.kind, method.kind)}; variant {config.spec.name}"
    kind = f"{method.kind}, " if method.kind != method.name else ""
    tuned = "fine-tuned " if me.trained else ""
    return f"method {method.name} ({kind}{tuned}embedder {me.describe()})"


def no_map_reason(config: Any) -> str:
    """Why a run of ``config`` has no embedding map (what :func:`soundlib.lab.embedmap.embedding_map` returned
    ``None`` for), in one line."""
    kind = config.method.kind
    if kind == "scratch":
        return f"no map: method {config.method.name} trains its own small network (no pretrained embedder to map)"
    if kind == "fusion":
        return (f"no map: method {config.method.name} joins several embedders; each member's own run maps its "
                "embeddings")
    if kind == "auto":
        return f"no map: method {config.method.name} has not recorded a pick (its run's metrics.json)"
    me = method_embedder(config)
    name = me.name if me is not None else str(config.backbone)
    return (f"no map: the pretrained {name} embeddings of these clips are not in the cache (`soundlib embed DATASET "
            f"--backbone {name}` fills it); {config.method.name} fine-tunes the network, whose own embeddings are "
            "not mapped")


def describe_model(model: Any) -> str:
    """One line on an exported model (:class:`~soundlib.models.load.LoadedModel`): its folder, method, embedder
    and windows, and the fold it was tested on."""
    method = model.info.get("method")
    name = method.get("name", method.get("method")) if isinstance(method, Mapping) else method
    me = model_embedder(model)
    if me is not None:
        on = f"embedder {me.describe()}"
    else:
        spec = model.spec
        record = model.info.get("embedder") if isinstance(model.info.get("embedder"), Mapping) else {}
        backbone = record.get("name") or model.info.get("backbone") or "its picture backbone"
        on = (f"embedder {backbone} on {spec.width}x{spec.height} {spec.name} pictures of {spec.duration:g}-s "
              f"windows at {spec.sr / 1000:g} kHz")
    fold = model.info.get("test_fold")
    tested = f"; tested on fold {fold}" if fold is not None else "; trained on every fold"
    path = Path(model.path)
    shown = path.name if path.name != "model" else f"{path.parent.name}/{path.name}"
    return f"model {shown}: method {name or 'not recorded'}, {on}{tested}"


# ---------------------------------------------------------------------------
# What the network sees


def _first_audio(path: str | os.PathLike, window: Any) -> np.ndarray:
    """The clip's first window as audio at the window's rate (unpadded when the window says ``none``)."""
    from soundlib.embedders.base import audio_windows

    return np.asarray(next(iter(audio_windows(Path(path), window)))[0], np.float32)


def model_input(path: str | os.PathLike, embedder: Any, spec: Any) -> tuple[str, np.ndarray]:
    """What ``embedder``'s network is given for the first window of the clip at ``path``.

    Parameters
    ----------
    path : path-like
        An audio file.
    embedder : soundlib.embedders.Embedder or MethodEmbedder
    spec : soundlib.pictures.variants.FeatureSpec
        The variant (a picture embedder's picture; an audio embedder's window length and hop); a duration
        rule (``fit``) takes the clip's own length.

    Returns
    -------
    title : str
        What the array is, for a figure.
    array : np.ndarray
        A picture embedder's picture, (H, W, 3) uint8; otherwise 2-D, (bands or coefficients, frames),
        low frequencies in row 0: mn04's log-mel (128 bands, 10-ms frames at 32 kHz), YAMNet's log-mel
        patches side by side (64 bands, 96 frames of 10 ms per 0.975-s patch), the speech model's mel
        frames (32 bands, 10 ms), the MFCCs (40 coefficients, 512-sample hop); for another audio
        embedder, a log-mel spectrogram of its window at its sample rate.
    """
    if isinstance(embedder, MethodEmbedder):
        embedder = embedder.embedder
    if not spec.resolved:  # a rule (duration: fit): this clip's own length, as featurize_clip chooses it
        from soundlib.pictures.variants import resolve_for_clips

        spec = resolve_for_clips(spec, [path])[0]
    name = str(embedder.name)
    if embedder.modality == "picture":
        from soundlib.pictures.featurize import featurize_clip

        pic = featurize_clip(path, spec)
        return f"{name}'s input: the {spec.name} picture ({pic.shape[1]}x{pic.shape[0]})", pic
    window = embedder.window(spec)
    if name == "mfcc":
        return _mfcc_view(path, embedder, window)
    audio = _first_audio(path, window)
    seconds = len(audio) / window.sr
    if name == "mn04":
        from soundlib.embedders.nets.efficientat_mn import MIN_SAMPLES, log_mel

        audio = np.pad(audio, (0, max(0, MIN_SAMPLES - len(audio))))
        mel = log_mel(audio)[0]
        return (f"mn04's input: log-mel, {mel.shape[0]} bands x {mel.shape[1]} frames of 10 ms "
                f"({seconds:.2f} s at {window.sr / 1000:g} kHz)"), mel
    if name == "yamnet":
        from soundlib.embedders.nets.yamnet import frames_of, log_mel_patches

        patches = log_mel_patches(frames_of(audio))  # (n, 96 frames, 64 bands)
        return (f"YAMNet's input: {len(patches)} log-mel patch(es) of 0.975 s side by side "
                f"(64 bands x 96 frames of 10 ms each, 16 kHz)"), np.concatenate(list(patches), axis=0).T
    if name == "speech":
        from soundlib.embedders.speech import SpeechModel

        mel = SpeechModel(threads=1).mel_frames(audio[None])[0]  # (frames, 32)
        return (f"the speech model's input: mel frames, {mel.shape[1]} bands x {mel.shape[0]} frames of 10 ms "
                f"({seconds:.2f} s at 16 kHz)"), mel.T
    return _generic_view(name, audio, window.sr)


def _mfcc_view(path: str | os.PathLike, embedder: Any, window: Any) -> tuple[str, np.ndarray]:
    import warnings

    import librosa

    from soundlib.embedders import WindowSpec

    audio = _first_audio(path, WindowSpec("mfcc", int(window.sr), window.n_samples / window.sr,
                                          window.hop_seconds, pad="none"))
    n_fft, hop = int(getattr(window, "n_fft", 2048)), int(getattr(window, "hop_length", 512))
    audio = np.pad(audio, (0, max(0, n_fft - len(audio))))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        power = np.abs(librosa.stft(audio, n_fft=n_fft, hop_length=hop)) ** 2
        mel = librosa.feature.melspectrogram(S=power, sr=window.sr, n_mels=128)
        mf = librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=int(getattr(embedder, "n_mfcc", 40)))
    return (f"the MFCC control's input: {mf.shape[0]} MFCCs x {mf.shape[1]} frames (hop {hop} at "
            f"{window.sr / 1000:g} kHz); the head sees their mean and std, and their deltas'"), mf


def _generic_view(name: str, audio: np.ndarray, sr: int) -> tuple[str, np.ndarray]:
    import warnings

    import librosa

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mel = librosa.feature.melspectrogram(y=np.pad(audio, (0, max(0, 1024 - len(audio)))), sr=sr, n_fft=1024,
                                             hop_length=max(1, sr // 100), n_mels=64)
    return (f"{name} computes its own spectrogram inside the network; shown: a 64-band log-mel of its "
            f"window ({len(audio) / sr:.2f} s at {sr / 1000:g} kHz)"), librosa.power_to_db(mel, ref=np.max)
