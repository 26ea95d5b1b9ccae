"""The front-ends of soundlib's models in TensorFlow ops that LiteRT's built-in kernels run, for the
waveform models of :mod:`soundlib.models.tflite_export`: one window of audio (``n`` float32 samples at
the model's rate) in, what the model's network takes out.

Each mirrors its numpy reference and says where it differs:

* :func:`mn04_embedding`: EfficientAT's log-mel (:func:`soundlib.embedders.nets.efficientat_mn.log_mel`:
  pre-emphasis, reflect padding, 800-point Hann window in a 1024-point frame every 320 samples, power,
  128 Kaldi mel bands, ``(log(mel + 1e-5) + 4.5) / 5``) as a strided convolution with a windowed-DFT
  kernel, then the mn04 network: the 896-d embedding.
* :func:`yamnet_embedding`: the window cut into YAMNet frames as :func:`~soundlib.embedders.nets.yamnet.frames_of`
  does (0.975 s every 0.48 s, the last aligned to the end), YAMNet's own TF frontend and network per
  frame, then the mean and the maximum over the frames (2048 numbers).
* :func:`mfcc_statistics`: librosa's MFCC statistics of :func:`soundlib.embedders.mfcc.mfcc_statistics`
  (``basic``: 40 MFCCs and their deltas, mean and standard deviation over time).
* :func:`spectrogram_picture`: the variant's picture as :func:`soundlib.pictures.features.render` draws it:
  power STFT, mel (Slaney) or linear rows, dB or amplitude scale against the window's peak, PIL's bilinear
  resize as two matrix products, the colormap as a gather on its 256-entry table; the waveform plot (each
  column's min/max as a gather of its samples); stacked panels; merged channels (without jitter);
  float32 (1, H, W, 3) in [0, 1].

The waveform embedders pad nothing (``pad: none``): soundlib embeds a clip shorter than a window as it is.
MediaPipe fills the last buffer of a recording with zeros, so these graphs treat trailing exact zeros
as absent (:func:`trailing_length`): mn04 runs on the trimmed audio (dynamic shapes), YAMNet and the
MFCC statistics mask the frames past it. A window whose audio really ends in digital silence is embedded
without that silence (the only difference from soundlib's own embedding of a full window).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from soundlib.errors import ModelError

__all__ = ["trailing_length", "logistic_head", "mn04_embedding", "yamnet_embedding", "mfcc_statistics",
           "spectrogram_picture", "picture_unsupported"]


def trailing_length(tf, x, least: int = 1):
    """The samples of the (n,) tensor ``x`` up to its last non-zero one (at least ``least``), int32 scalar."""
    n = int(x.shape[0])
    nonzero = tf.cast(tf.not_equal(x, 0.0), tf.int32)
    return tf.maximum(tf.reduce_max(nonzero * tf.range(1, n + 1, dtype=tf.int32)), least)


def logistic_head(tf, head) -> Callable[[Any], Any]:
    """A :class:`~soundlib.methods.heads.LogisticHead` as one dense layer (standardisation and calibration
    temperature folded in) and a softmax, or a sigmoid per class for a multi-label head: (1, d) -> (1, C)."""
    kernel, bias = head.dense()
    k, b = tf.constant(kernel), tf.constant(bias)
    if getattr(head, "multilabel", False):
        return lambda emb: tf.math.sigmoid(tf.matmul(emb, k) + b)
    return lambda emb: tf.nn.softmax(tf.matmul(emb, k) + b, axis=-1)


def mn04_embedding(tf, checkpoint) -> Callable[[Any], Any]:
    """(n,) 32-kHz waveform tensor -> (1, 896) mn04 embedding (trailing zeros trimmed; dynamic shapes)."""
    from soundlib.embedders.nets import efficientat_mn as E

    net = E.build_embedding_model(checkpoint)
    filters = E.mel_filterbank()
    n_bins = int(np.nonzero(filters.any(axis=0))[0].max()) + 1  # bins above 15 kHz have no mel weight
    first = (E.N_FFT - E.WIN_LENGTH) // 2  # the symmetric 800-point Hann window centred in the 1024-point frame
    taps = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(E.WIN_LENGTH) / (E.WIN_LENGTH - 1))
    phase = 2 * np.pi * np.outer(np.arange(first, first + E.WIN_LENGTH), np.arange(n_bins)) / E.N_FFT
    kernel = np.concatenate([taps[:, None] * np.cos(phase), -taps[:, None] * np.sin(phase)], axis=1)
    kernel = tf.constant(kernel[:, None, :].astype(np.float32))
    mel = tf.constant(filters[:, :n_bins].T.astype(np.float32))

    def embed(x):
        n = trailing_length(tf, x, E.MIN_SAMPLES)
        y = tf.slice(x, [0], tf.reshape(n, [1]))
        emphasised = y[1:] - E.PREEMPHASIS * y[:-1]
        padded = tf.pad(emphasised, [[E.N_FFT // 2, E.N_FFT // 2]], mode="REFLECT")
        # frame t covers padded[t * hop : t * hop + n_fft]; its window is non-zero on [first, first + 800)
        spec = tf.nn.conv1d(tf.reshape(padded[first:], [1, -1, 1]), kernel, stride=E.HOP, padding="VALID")
        frames = 1 + (n - 1) // E.HOP  # as log_mel counts them
        spec = spec[:, :frames]
        power = tf.square(spec[0, :, :n_bins]) + tf.square(spec[0, :, n_bins:])
        log_mel = (tf.math.log(tf.matmul(power, mel) + E.LOG_OFFSET) + E.NORM_SHIFT) / E.NORM_SCALE
        return net(tf.transpose(log_mel)[None, :, :, None], training=False)

    return embed


def yamnet_embedding(tf, n: int) -> Callable[[Any], Any]:
    """(n,) 16-kHz waveform tensor -> (1, 2048): [mean, max] of YAMNet's frame embeddings (static shapes)."""
    from soundlib.audio.clips import window_starts
    from soundlib.embedders.nets.yamnet import FRAME_SAMPLES, SR
    from soundlib.embedders.nets.yamnet_weights import build_frames_model

    frames_model = build_frames_model()
    hop = int(round(0.48 * SR))
    slots = len(window_starts(n, FRAME_SAMPLES, hop))  # the most frames a window can have

    def embed(x):
        if n < FRAME_SAMPLES:
            x = tf.pad(x, [[0, FRAME_SAMPLES - n]])
        length = trailing_length(tf, x)
        last = tf.maximum(length - FRAME_SAMPLES, 0)
        regular = tf.where(length > FRAME_SAMPLES, (length - FRAME_SAMPLES) // hop + 1, 1)
        extra = tf.cast((regular - 1) * hop + FRAME_SAMPLES < length, tf.int32)
        count = regular + extra
        starts = tf.minimum(tf.range(slots, dtype=tf.int32) * hop, last)
        index = starts[:, None] + tf.range(FRAME_SAMPLES, dtype=tf.int32)[None, :]
        emb = frames_model(tf.gather(x, index), training=False)[0]  # (slots, 1024)
        valid = tf.cast(tf.range(slots) < count, tf.float32)[:, None]
        mean = tf.reduce_sum(emb * valid, axis=0) / tf.cast(count, tf.float32)
        peak = tf.reduce_max(emb * valid - 1e9 * (1.0 - valid), axis=0)
        return tf.concat([mean, peak], axis=0)[None]

    return embed


def _stft_power(tf, x, n_fft: int, hop: int):
    """|STFT|^2 with centred frames (zero padding) and a periodic Hann window: (frames, 1 + n_fft // 2)."""
    padded = tf.pad(x, [[n_fft // 2, n_fft // 2]])
    frames = tf.signal.frame(padded, n_fft, hop)
    spec = tf.signal.rfft(frames * tf.signal.hann_window(n_fft, periodic=True))
    return tf.square(tf.math.real(spec)) + tf.square(tf.math.imag(spec))


def _delta_operators(width: int = 9) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """librosa's first delta (Savitzky-Golay, order 1, ``mode='interp'``) as linear maps: the interior
    filter (width,), and the first and last ``width // 2`` outputs from the first / last ``width`` frames."""
    import scipy.signal

    eye = np.eye(width)
    edges = scipy.signal.savgol_filter(eye, width, 1, deriv=1, axis=0, mode="interp")  # (out frame, in frame)
    half = width // 2
    coeffs = scipy.signal.savgol_coeffs(width, 1, deriv=1, use="dot")
    return coeffs.astype(np.float32), edges[:half].astype(np.float32), edges[width - half:].astype(np.float32)


def mfcc_statistics(tf, *, sr: int, n: int, n_fft: int, hop_length: int, n_mfcc: int,
                    features: str) -> Callable[[Any], Any]:
    """(n,) waveform tensor -> (1, 4 n_mfcc): the ``basic`` MFCC statistics over the frames up to the last
    non-zero sample. ``rich`` (medians, skewness, spectral contrast, chroma...) has no graph here."""
    import librosa

    if features != "basic":
        raise ModelError(f"MFCC features {features!r}: only 'basic' (MFCCs and deltas, mean and std) can be "
                         "exported as a waveform model; the 'rich' set's medians, skewness, kurtosis, spectral "
                         "contrast and chroma have no LiteRT graph here")
    width, n_mels = 9, 128
    min_samples = max(n_fft, (width - 1) * hop_length)  # at least 9 frames: librosa's full-width delta
    if n < min_samples:
        raise ModelError(f"a window of {n} samples gives fewer than {width} MFCC frames; a waveform model needs "
                         f"windows of at least {min_samples} samples at {sr} Hz")
    filters = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels).astype(np.float32)  # (128, bins)
    m = np.arange(n_mels)
    dct = np.cos(np.pi * np.outer(np.arange(n_mfcc), 2 * m + 1) / (2 * n_mels)) * np.sqrt(2.0 / n_mels)
    dct[0] /= np.sqrt(2.0)  # scipy.fft.dct(type=2, norm="ortho")
    coeffs, head_op, tail_op = _delta_operators(width)
    total = 1 + n // hop_length
    half = width // 2

    def stats(x):
        length = tf.maximum(trailing_length(tf, x), min_samples)
        used = 1 + length // hop_length  # librosa's frames of the trimmed clip (centred, zero padded)
        valid = tf.cast(tf.range(total) < used, tf.float32)[:, None]  # (frames, 1)
        power = _stft_power(tf, x, n_fft, hop_length)
        db = 10.0 * tf.math.log(tf.maximum(tf.matmul(power, tf.constant(filters.T)), 1e-10)) / np.log(10.0)
        top = tf.reduce_max(db * valid - 1e9 * (1.0 - valid))
        db = tf.maximum(db, top - 80.0)
        mf = tf.matmul(db, tf.constant(dct.T.astype(np.float32)))  # (frames, n_mfcc)
        inner = tf.nn.conv1d(tf.transpose(mf)[:, :, None], tf.constant(coeffs[:, None, None]), 1,
                             "VALID")[:, :, 0]  # (n_mfcc, frames - 8): frame t + 4's delta
        tail = tf.gather(mf, used - width + tf.range(width))  # the last 9 used frames
        delta = tf.concat([tf.matmul(tf.constant(head_op), mf[:width]), tf.transpose(inner),
                           tf.zeros([half, n_mfcc])], axis=0)  # (frames, n_mfcc), rows past `used` masked below
        at_end = tf.cast(tf.equal(tf.range(total)[:, None], used - half + tf.range(half)[None, :]), tf.float32)
        keep = valid * (1.0 - tf.reduce_sum(at_end, axis=1, keepdims=True))
        delta = delta * keep + tf.matmul(at_end, tf.matmul(tf.constant(tail_op), tail))
        count = tf.cast(used, tf.float32)

        def mean_std(v):
            mean = tf.reduce_sum(v * valid, axis=0) / count
            var = tf.reduce_sum(tf.square(v - mean) * valid, axis=0) / count
            return mean, tf.sqrt(tf.maximum(var, 0.0))

        (m1, s1), (m2, s2) = mean_std(mf), mean_std(delta)
        return tf.concat([m1, s1, m2, s2], axis=0)[None]

    return stats


def picture_unsupported(spec) -> str | None:
    """Why the variant's picture has no graph here (``None`` when it has one)."""
    if spec.kind == "merged" and spec.merge.jitter > 0:
        return (f"variant {spec.name!r} merges its channels with jitter {spec.merge.jitter:g}: each clip's strengths "
                "are drawn from a random generator seeded by a checksum (CRC-32) of its samples, which LiteRT ops "
                "cannot compute; merged pictures without jitter can be exported")
    if spec.pad != "end":
        return (f"variant {spec.name!r} pads short clips with pad={spec.pad!r}; MediaPipe fills a short buffer with "
                "silence after it, which only pad='end' reproduces")
    return None


def _pil_resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """The (n_out, n_in) matrix of PIL's bilinear resize along one axis (the weights it uses, antialiased
    when shrinking), found by resizing the identity."""
    from PIL import Image

    if n_in == n_out:
        return np.eye(n_in, dtype=np.float32)
    img = Image.fromarray(np.eye(n_in, dtype=np.float32), mode="F")  # row i: the i-th basis vector
    out = np.asarray(img.resize((n_out, n_in), Image.Resampling.BILINEAR), dtype=np.float32)  # (n_in, n_out)
    return np.ascontiguousarray(out.T)


def _spectrogram_plane(tf, spec, height: int) -> Callable[[Any], Any]:
    """(n,) waveform -> the (height, W) spectrogram plane, resized as :func:`soundlib.pictures.features._resize`
    does it (float32; the renderer clips it to [0, 1] afterwards)."""
    from soundlib.pictures.features import slaney_mel_filters

    n_bins = 1 + spec.n_fft // 2
    fmax = spec.fmax if spec.fmax is not None else spec.sr / 2
    if spec.frequency == "mel":
        rows = slaney_mel_filters(spec.sr, spec.n_fft, spec.n_mels, float(spec.fmin), float(fmax)).astype(np.float32)
        n_rows, band = rows.shape[0], slice(0, n_bins)
    else:  # the STFT bins from fmin to fmax: a slice of the power spectrum
        freqs = np.linspace(0, spec.sr / 2, n_bins)
        kept = np.nonzero((freqs >= spec.fmin) & (freqs <= fmax))[0]
        if not kept.size:
            raise ModelError(f"variant {spec.name!r}: no STFT bin between fmin {spec.fmin} and fmax {fmax} Hz")
        rows, n_rows, band = None, int(kept.size), slice(int(kept[0]), int(kept[-1]) + 1)
    n_frames = 1 + (spec.n_samples + 2 * (spec.n_fft // 2) - spec.n_fft) // spec.hop_length  # centred frames
    vertical = tf.constant(_pil_resize_matrix(n_rows, height)[:, ::-1].copy())  # row 0 of the picture: the top
    horizontal = tf.constant(_pil_resize_matrix(n_frames, spec.width).T.copy())  # (frames, W)

    def plane(x):
        power = _stft_power(tf, x, spec.n_fft, spec.hop_length)[:, band]  # (frames, bins)
        s = tf.transpose(power) if rows is None else tf.matmul(tf.constant(rows), power, transpose_b=True)
        peak = tf.reduce_max(s)
        safe = tf.maximum(peak, 1e-30)
        if spec.scale == "db":
            db = 10.0 * tf.math.log(tf.maximum(s, safe * 1e-10) / safe) / np.log(10.0)
            p = tf.clip_by_value(1.0 + db / spec.top_db, 0.0, 1.0)
        else:
            p = tf.sqrt(s) / tf.sqrt(safe)
        return tf.matmul(tf.matmul(vertical, p * tf.cast(peak > 0, tf.float32)), horizontal)  # (height, W)

    return plane


def _waveform_plane(tf, n: int, height: int, width: int) -> Callable[[Any], Any]:
    """(n,) waveform -> :func:`soundlib.pictures.features.waveform_plane`'s (height, width) mask: each column's
    min/max over its run of samples (``np.minimum.reduceat`` on the clip with a zero appended) as a gather
    of every column's samples (runs padded by repeating their first sample), scaled to the peak."""
    edges = np.linspace(0, n, width + 1).astype(int)
    edges[1:] = np.maximum(edges[1:], edges[:-1] + 1)
    edges = np.minimum(edges, n)
    runs = [np.arange(a, b) if a < b else np.array([a]) for a, b in zip(edges[:-1], [*edges[1:-1], n + 1])]
    longest = max(len(r) for r in runs)
    index = tf.constant(np.stack([np.pad(r, (0, longest - len(r)), mode="edge") for r in runs]).astype(np.int32))
    rows = tf.range(height, dtype=tf.float32)[:, None]

    def plane(x):
        peak = tf.reduce_max(tf.abs(x))
        y = tf.concat([x / tf.where(peak > 0, peak, 1.0), tf.zeros([1])], axis=0)
        cols = tf.gather(y, index)  # (width, longest)
        lo, hi = tf.reduce_min(cols, axis=1), tf.reduce_max(cols, axis=1)
        top = tf.floor((1.0 - hi) * 0.5 * (height - 1))
        bottom = tf.math.ceil((1.0 - lo) * 0.5 * (height - 1))
        return tf.cast((rows >= top[None, :]) & (rows <= bottom[None, :]), tf.float32)

    return plane


def spectrogram_picture(tf, spec) -> Callable[[Any], Any]:
    """(n,) waveform tensor at ``spec.sr`` -> (1, H, W, 3) float32 picture in [0, 1], as
    :func:`soundlib.pictures.features.render` draws the variant (divided by 255): a spectrogram with its
    colormap, a waveform plot, both stacked, or merged as channels (without jitter)."""
    from soundlib.pictures.features import colormap_lut
    from soundlib.pictures.merge import jittered_strengths

    why = picture_unsupported(spec)
    if why:
        raise ModelError(why)
    lut = tf.constant(colormap_lut(spec.colormap).astype(np.float32))
    fg, bg = (np.asarray(c, np.float32) for c in (spec.waveform_color, spec.background_color))

    def coloured(plane):  # _apply_lut: (h, W) -> (h, W, 3) in 0..255
        return tf.gather(lut, tf.cast(tf.clip_by_value(plane, 0.0, 1.0) * 255.0 + 0.5, tf.int32))

    def drawn(mask):  # render_waveform
        return tf.floor(tf.constant(bg) + mask[:, :, None] * tf.constant(fg - bg) + 0.5)

    h, w = spec.height, spec.width
    if spec.kind == "spectrogram":
        spectrum = _spectrogram_plane(tf, spec, h)

        def picture(x):
            return coloured(spectrum(x))
    elif spec.kind == "waveform":
        wave = _waveform_plane(tf, spec.n_samples, h, w)

        def picture(x):
            return drawn(wave(x))
    elif spec.kind == "stacked":
        top = max(1, min(h - 1, int(round(h * spec.merge.stack_ratio))))
        spectrum, wave = _spectrogram_plane(tf, spec, top), _waveform_plane(tf, spec.n_samples, h - top, w)

        def picture(x):
            return tf.concat([coloured(spectrum(x)), drawn(wave(x))], axis=0)
    else:  # merged: merge_channels with the spec's strengths
        spectrum, wave = _spectrogram_plane(tf, spec, h), _waveform_plane(tf, spec.n_samples, h, w)
        strengths = jittered_strengths(spec.merge)

        def picture(x):
            planes = {"spectrogram": spectrum(x), "waveform": wave(x)}
            channels = [tf.clip_by_value(planes[source], 0.0, 1.0) * np.float32(strengths[c])
                        if source in planes else tf.fill([h, w], np.float32(strengths[c]))
                        for c, source in enumerate(spec.merge.order)]
            return tf.floor(tf.stack(channels, axis=-1) * 255.0 + 0.5)

    return lambda x: (picture(x) / 255.0)[None]
