"""Reading audio: mono, at a target rate, one window at a time.

Every reader here reads only the part of the file it needs (a seek and a
bounded read, plus a few milliseconds of margin for the resampler), so memory
is bounded by the window, not the file: a ten-minute 96 kHz recording costs
what its four seconds cost.

A clip longer than a window is cut into windows (:func:`window_starts`): the
first starts at 0, the next every ``hop`` samples, and the last is aligned to
the clip's end, so every window holds real audio. A clip shorter than a window
is padded (:func:`pad_to`): with silence at the end (``"end"``, the default),
silence on both sides (``"center"``), or by repeating it (``"repeat"``).
"""

from __future__ import annotations

import dataclasses
import os
import stat
import threading
from pathlib import Path
from typing import Iterator

import numpy as np

from soundlib.errors import AudioError

__all__ = [
    "SILENCE_PEAK",
    "MAX_AMPLITUDE",
    "MIN_HOP",
    "MAX_WINDOWS",
    "PAD_POLICIES",
    "AudioInfo",
    "audio_info",
    "read_segment",
    "load_audio",
    "load_windows",
    "stream_windows",
    "iter_windows",
    "window_starts",
    "clip_samples",
    "pad_to",
    "fix_duration",
]

#: Peak amplitude below which a clip counts as silent (about -100 dBFS).
SILENCE_PEAK = 1e-5
#: Largest sample magnitude read (full scale is 1; 1e10 is 200 dB above it, beyond any float WAV written as
#: scaled integers). Larger finite samples (a broken file, such as one of values about 1e30) would overflow
#: the spectrograms' float32 power and give NaN pictures and scores: they are refused as NaN samples are.
MAX_AMPLITUDE = 1e10
#: Shortest time between window starts, in seconds (1 ms; at least one sample at every rate soundlib reads).
MIN_HOP = 0.001
#: Most windows one file is cut into (a 1-hour recording at a 4-ms hop); more is refused before any is read.
MAX_WINDOWS = 1_000_000
#: How a clip shorter than a window is padded.
PAD_POLICIES = ("end", "center", "repeat")
#: Extra audio read on each side of a segment that must be resampled (cropped afterwards), in seconds.
_RESAMPLE_MARGIN = 0.05
#: Frames (at the file's rate) read at a time by :func:`stream_windows`.
_STREAM_BLOCK = 1 << 16


@dataclasses.dataclass(frozen=True)
class AudioInfo:
    """What a file's header says: sample rate (Hz), frames per channel, channels, duration (s)."""

    sr: int
    frames: int
    channels: int

    @property
    def duration(self) -> float:
        return self.frames / self.sr if self.sr else 0.0


def _sf_name(path: Path) -> bytes | str:
    """The name to give libsndfile: the path's bytes (soundfile would encode a ``str`` as strict UTF-8,
    failing on file names that are not valid UTF-8)."""
    return str(path) if os.name == "nt" else os.fsencode(path)


_NOT_REGULAR = ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                (stat.S_ISBLK, "a block device"))


def _check_file(path: Path) -> None:
    """Raise :class:`AudioError` with the plain reason when ``path`` is not a readable, non-empty regular file
    (libsndfile reports an unreadable file as "System error."; opening a named pipe would wait forever for a
    writer). Warn, once per file, when a WAV file is shorter than its header says (see :func:`_check_wav_length`)."""
    try:
        st = path.stat()
    except OSError:
        st = None
    if st is None or not path.exists():
        raise AudioError(f"{path}: a link that loops or leads nowhere" if path.is_symlink()
                         else f"{path}: file not found")
    if stat.S_ISDIR(st.st_mode):
        raise AudioError(f"{path}: is a folder, expected an audio file")
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _NOT_REGULAR if test(st.st_mode)), "not a regular file")
        raise AudioError(f"{path}: is {kind}, not a regular file; expected an audio file (not read)")
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
            if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
                key = (os.fsencode(path), st.st_size, st.st_mtime_ns, st.st_ino)
                if key not in _WAV_CHECKED:
                    _WAV_CHECKED.add(key)
                    _check_wav_length(path, fh, st.st_size)
    except OSError as exc:
        raise AudioError(f"{path}: cannot read the file: {(exc.strerror or str(exc)).lower()}") from None
    if not head:
        raise AudioError(f"{path}: empty file (0 bytes)")


#: WAV files whose length was checked by this process: (path, size, mtime_ns, inode).
_WAV_CHECKED: set = set()


def _check_wav_length(path: Path, fh, size: int) -> None:
    """Warn when the ``data`` chunk of a RIFF/WAVE file (``fh`` just past its 12-byte header) declares
    more bytes than the file holds: a truncated copy or download, of which libsndfile silently reads
    what is there."""
    import struct

    from soundlib.errors import warn

    block = rate = 0
    pos = 12
    while pos + 8 <= size:
        fh.seek(pos)
        chunk = fh.read(8)
        if len(chunk) < 8:
            return
        cid, n = chunk[:4], struct.unpack("<I", chunk[4:])[0]
        if cid == b"fmt ":
            fmt = fh.read(16)
            if len(fmt) >= 14:
                rate, _, block = struct.unpack("<IIH", fmt[4:14])
        elif cid == b"data":
            held = size - (pos + 8)
            if n != 0xFFFFFFFF and n > held:  # 0xFFFFFFFF: a stream written without knowing its length
                frames = n // block - held // block if block else 0
                seconds = f", {frames / rate:.3g} s" if rate else ""
                what = f" ({frames} frames{seconds})" if block else ""
                warn(f"{path}: truncated WAV file: its header declares {n} bytes of audio but the file holds "
                     f"{held}; {n - held} bytes{what} are missing, only the audio present is used")
            return
        pos += 8 + n + (n & 1)  # chunks are padded to an even size


def _check_samples(path: Path, data: np.ndarray) -> None:
    """Raise :class:`AudioError` naming ``path`` when decoded samples (any channel) are NaN, infinite, or
    larger in magnitude than :data:`MAX_AMPLITUDE`."""
    if not data.size:
        return
    lo, hi = float(np.min(data)), float(np.max(data))  # NaN when any sample is NaN
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise AudioError(f"{path}: audio holds NaN or infinite samples")
    peak = max(-lo, hi)
    if peak > MAX_AMPLITUDE:
        raise AudioError(f"{path}: audio holds samples of magnitude {peak:.3g}, far beyond full scale (1.0; soundlib "
                         f"reads up to {MAX_AMPLITUDE:g}): a broken or wrongly scaled file")


#: Headers libsndfile read in this process: (path, size, mtime_ns, ctime_ns, inode) -> AudioInfo, the most
#: recent :data:`_HEADERS_MAX` of them. Opening a compressed file costs milliseconds (an Ogg Vorbis file's
#: codebooks are parsed), and embedding a clip asked for its header three or four times.
_HEADERS: dict = {}
_HEADERS_MAX = 4096
_HEADERS_LOCK = threading.Lock()


def _sf_info(path: Path) -> AudioInfo:
    """libsndfile's header of ``path``, remembered while the file is unchanged (its size, times and inode);
    raises as ``soundfile.info`` does."""
    import soundfile as sf

    try:
        st = os.stat(path)
        key: tuple | None = (os.fsencode(path), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    except OSError:
        key = None
    with _HEADERS_LOCK:
        known = _HEADERS.get(key) if key is not None else None
    if known is not None:
        return known
    info = sf.info(_sf_name(path))
    known = AudioInfo(int(info.samplerate), int(info.frames), int(info.channels))
    if key is not None:
        with _HEADERS_LOCK:
            if len(_HEADERS) >= _HEADERS_MAX:
                _HEADERS.pop(next(iter(_HEADERS)))  # the oldest
            _HEADERS[key] = known
    return known


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Read a file's header (no samples decoded, except for formats libsndfile lacks)."""
    import soundfile as sf

    path = Path(path)
    _check_file(path)
    try:
        return _sf_info(path)
    except (sf.LibsndfileError, RuntimeError, TypeError) as sf_exc:
        y, sr = _decode_fallback(path, sf_exc, offset=0.0, duration=None)
        return AudioInfo(sr, y.shape[-1], y.shape[0])


def _decode_fallback(path: Path, sf_exc: Exception, *, offset: float, duration: float | None) -> tuple[np.ndarray, int]:
    """Formats libsndfile lacks (some mp3/m4a) go through librosa/audioread, which streams blocks."""
    try:
        import warnings

        import librosa

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            y, sr = librosa.load(str(path), sr=None, mono=False, offset=offset, duration=duration)
        return np.atleast_2d(y).astype(np.float32), int(sr)
    except Exception:
        raise AudioError(f"{path}: not a readable audio file ({sf_exc})") from None


def _read_frames(path: Path, start: int, stop: int | None) -> tuple[np.ndarray, int]:
    """Frames ``[start, stop)`` at the file's rate, shape (channels, n), and that rate."""
    import soundfile as sf

    try:
        with sf.SoundFile(_sf_name(path)) as f:
            sr = int(f.samplerate)
            if start > 0:
                if not f.seekable():
                    raise RuntimeError("not seekable")
                f.seek(min(start, f.frames))
            n = -1 if stop is None else max(0, stop - start)
            data = f.read(n, dtype="float32", always_2d=True)
        return data.T, sr
    except (sf.LibsndfileError, RuntimeError, TypeError) as sf_exc:
        info_sr = None
        try:
            info_sr = int(sf.info(_sf_name(path)).samplerate)
        except Exception:
            pass
        offset = start / info_sr if info_sr else 0.0
        duration = (stop - start) / info_sr if (info_sr and stop is not None) else None
        return _decode_fallback(path, sf_exc, offset=offset, duration=duration)


def read_segment(path: str | os.PathLike, *, sr: int, start: float = 0.0, duration: float | None = None,
                 allow_silent: bool = True) -> np.ndarray:
    """Read ``duration`` seconds from ``start`` as mono float32 at ``sr`` Hz, reading only that part.

    Parameters
    ----------
    path : path-like
        Any file soundfile (libsndfile) reads: WAV/FLAC/OGG/AIFF at any rate and
        bit depth; other formats fall back to librosa/audioread.
    sr : int
        Target sample rate in Hz; resampled with soxr (high quality) when the file's differs.
    start, duration : float
        Seconds; ``duration=None`` reads to the end. A segment past the end is shorter (or empty).
    allow_silent : bool
        Accept an all-silent segment instead of raising.

    Returns
    -------
    np.ndarray, shape (n,), float32
        ``n = round(duration * sr)`` samples at most.

    Raises
    ------
    AudioError
        The file is missing, unreadable, not audio, empty, non-finite (or beyond :data:`MAX_AMPLITUDE`),
        or (unless allowed) silent.
    """
    path = Path(path)
    _check_file(path)
    import soundfile as sf

    try:
        file_sr: int | None = _sf_info(path).sr
    except (sf.LibsndfileError, RuntimeError, TypeError):
        file_sr = None
    if file_sr is None or file_sr == sr:
        # no resampling: read the exact frames (fallback formats report their own rate)
        rate = file_sr or sr
        first = int(round(start * rate))
        stop = None if duration is None else first + int(round(duration * rate))
        data, got_sr = _read_frames(path, first, stop)
        margin_before = 0
    else:
        # read from a file sample that falls exactly on the target-rate grid, so the chunk's
        # resampled samples line up with those of the whole file; the margin is cropped away
        import math

        q = file_sr // math.gcd(file_sr, sr)  # file samples per grid step
        t0 = int(round(start * sr))  # first wanted sample, at the target rate
        lo = max(0, (t0 * file_sr // sr - int(round(_RESAMPLE_MARGIN * file_sr))) // q * q)
        stop = None if duration is None else int(math.ceil((start + duration + _RESAMPLE_MARGIN) * file_sr))
        data, got_sr = _read_frames(path, lo, stop)
        margin_before = t0 - lo * sr // file_sr  # in target samples
    if data.shape[-1] == 0 and start == 0:
        raise AudioError(f"{path}: zero-length audio (0 samples)")
    _check_samples(path, data)
    y = data.mean(axis=0) if data.shape[0] > 1 else data[0]
    if got_sr != sr:
        import soxr

        y = soxr.resample(y, got_sr, sr, quality="HQ") if y.size else y
        y = y[margin_before:]
    if duration is not None:
        y = y[: int(round(duration * sr))]
    if not allow_silent:
        peak = float(np.max(np.abs(y))) if y.size else 0.0
        if peak < SILENCE_PEAK:
            raise AudioError(f"{path}: silent audio (peak amplitude {peak:.2g}, below {SILENCE_PEAK:g})")
    return np.ascontiguousarray(y, dtype=np.float32)


def pad_to(y: np.ndarray, n: int, *, policy: str = "end") -> np.ndarray:
    """Pad (or trim) mono ``y`` to exactly ``n`` samples.

    Parameters
    ----------
    y : np.ndarray, shape (m,)
    n : int
    policy : {"end", "center", "repeat"}
        Silence after the clip, silence split before and after it, or the clip
        repeated (tiled) until ``n`` samples are filled.

    Returns
    -------
    np.ndarray, shape (n,), same dtype as ``y``
    """
    if policy not in PAD_POLICIES:
        raise AudioError(f"padding policy must be one of {', '.join(PAD_POLICIES)}, got {policy!r}")
    m = y.shape[-1]
    if m >= n:
        return y[..., :n]
    if policy == "repeat" and m > 0:
        return np.tile(y, -(-n // m))[..., :n]
    before = (n - m) // 2 if policy == "center" else 0
    out = np.zeros(y.shape[:-1] + (n,), dtype=y.dtype)
    out[..., before:before + m] = y
    return out


def fix_duration(y: np.ndarray, *, sr: int, duration: float | None, pad: str = "end") -> np.ndarray:
    """Pad (``pad`` policy) or trim ``y`` to exactly ``duration`` seconds (``None``: unchanged)."""
    if duration is None:
        return y
    return pad_to(y, int(round(sr * duration)), policy=pad)


def clip_samples(path: str | os.PathLike, sr: int) -> int:
    """The clip's length in samples at ``sr`` Hz, from its header (what windowing counts on)."""
    info = audio_info(path)
    return int(round(info.frames * sr / info.sr)) if info.sr else 0


def window_starts(n_samples: int, window: int, hop: int, *, path: str | os.PathLike | None = None,
                  sr: int | None = None) -> list[int]:
    """Start samples of the windows that cover a clip of ``n_samples``.

    One window (at 0) when the clip fits in it; otherwise windows every ``hop``
    samples while they fit, and a last one aligned to the clip's end. More than
    :data:`MAX_WINDOWS` are refused (an :class:`AudioError` naming ``path``, with
    seconds when ``sr`` is given) before any is listed.
    """
    if window <= 0 or hop <= 0:
        raise AudioError(f"window and hop must be positive, got window={window}, hop={hop}")
    if n_samples <= window:
        return [0]
    last = (n_samples - window) // hop * hop
    count = last // hop + 1 + (last + window < n_samples)
    if count > MAX_WINDOWS:
        where = f"{path}: " if path is not None else ""
        cut = (f"{n_samples / sr:.6g} s cut every {hop / sr:.6g} s" if sr else
               f"{n_samples} samples cut every {hop} samples")
        raise AudioError(f"{where}{cut} gives {count:,} windows, more than {MAX_WINDOWS:,} per file; "
                         "use a longer hop")
    starts = list(range(0, last + 1, hop))
    if starts[-1] + window < n_samples:
        starts.append(n_samples - window)
    return starts


def _hop_samples(hop: float, sr: int) -> int:
    """``hop`` seconds as samples at ``sr`` (at least one), refusing a hop under :data:`MIN_HOP`."""
    if not (isinstance(hop, (int, float, np.integer, np.floating)) and MIN_HOP <= float(hop) < float("inf")):
        raise AudioError(f"the hop between windows must be at least {MIN_HOP:g} s (1 ms), got {hop!r}")
    return max(1, int(round(sr * hop)))


def load_audio(path: str | os.PathLike, *, sr: int = 22050, duration: float | None = 4.0, pad: str = "end",
               allow_silent: bool = False) -> np.ndarray:
    """The first ``duration`` seconds of a file as mono float32 at ``sr`` Hz, padded to length.

    Only the first ``duration`` seconds (plus a resampling margin) are read.

    Returns
    -------
    np.ndarray, shape (round(sr * duration),), float32
        (all of the file when ``duration`` is ``None``).

    Raises
    ------
    AudioError
        The file is missing, unreadable, not audio, empty, non-finite, or (unless allowed) silent.
    """
    y = read_segment(path, sr=sr, start=0.0, duration=duration, allow_silent=allow_silent)
    return np.ascontiguousarray(fix_duration(y, sr=sr, duration=duration, pad=pad))


def load_windows(path: str | os.PathLike, *, sr: int, duration: float, hop: float, pad: str = "end",
                 allow_silent: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Every window of a clip (for clips of seconds to a minute or two: the clip is read whole;
    :func:`stream_windows` gives the same windows in bounded memory).

    Returns
    -------
    windows : np.ndarray, shape (n_windows, round(sr * duration)), float32
    starts : np.ndarray, shape (n_windows,), float
        Start of each window in seconds.
    """
    y = read_segment(path, sr=sr, allow_silent=allow_silent)
    n = int(round(sr * duration))
    starts = window_starts(clip_samples(path, sr), n, _hop_samples(hop, sr), path=path, sr=sr)
    windows = np.stack([pad_to(y[s:s + n], n, policy=pad) for s in starts])
    return windows, np.asarray(starts, dtype=np.float64) / sr


def _mono_blocks(path: Path, sr: int, block: int = _STREAM_BLOCK) -> Iterator[np.ndarray]:
    """The whole file as consecutive mono float32 blocks at ``sr`` Hz, read front to back.

    Concatenated, the blocks are exactly ``read_segment(path, sr=sr)`` (the same samples, bit for bit: soxr's
    stream gives what its one-shot call gives); non-finite or huge samples and a file of no frames raise as there.
    Formats libsndfile lacks are decoded whole (through :func:`read_segment`).
    """
    import soundfile as sf

    _check_file(path)
    try:
        f = sf.SoundFile(_sf_name(path))
    except (sf.LibsndfileError, RuntimeError, TypeError):
        yield read_segment(path, sr=sr, allow_silent=True)
        return
    with f:
        file_sr = int(f.samplerate)
        stream = None
        if file_sr != sr:
            import soxr

            stream = soxr.ResampleStream(file_sr, sr, 1, dtype="float32", quality="HQ")
        frames = sent = 0
        while True:
            try:
                data = f.read(block, dtype="float32", always_2d=True).T
            except (sf.LibsndfileError, RuntimeError, TypeError):
                # what read_segment does with a file libsndfile cannot read through (its fallback decoder, or
                # its error), minus what was already given
                rest = read_segment(path, sr=sr, allow_silent=True)[sent:]
                if rest.size:
                    yield rest
                return
            last = data.shape[-1] == 0
            if last and frames == 0:
                raise AudioError(f"{path}: zero-length audio (0 samples)")
            frames += data.shape[-1]
            _check_samples(path, data)
            y = data.mean(axis=0) if data.shape[0] > 1 else data[0]
            if stream is not None:
                y = stream.resample_chunk(np.ascontiguousarray(y), last=last)
            if y.size:
                sent += y.size
                yield np.ascontiguousarray(y, dtype=np.float32)
            if last:
                return


def stream_windows(path: str | os.PathLike, *, sr: int, duration: float, hop: float, pad: str = "end",
                   starts: str = "header", allow_silent: bool = False) -> Iterator[tuple[float, np.ndarray]]:
    """Every window of a clip, streamed: the windows of :func:`load_windows`, bit for bit, in bounded memory.

    The file is read once, front to back, a block at a time (and resampled as a stream), so memory stays
    at a window and a block whatever the clip's length. The whole file is read, so the checks of
    :func:`read_segment` cover all of it; those known only at the end (a silent clip) raise after the
    last window was yielded: a caller keeps nothing of a clip until the iterator is exhausted.

    Parameters
    ----------
    sr : int
        Target sample rate in Hz.
    duration, hop : float
        Seconds of one window and between window starts.
    pad : {"end", "center", "repeat", "none"}
        How a window that runs past the audio is padded (see :func:`pad_to`); ``"none"``: it comes as it is.
    starts : {"header", "audio"}
        Where the windows start: from the length the header gives (:func:`clip_samples`, what
        :func:`load_windows` and the embedding cache count), or from the decoded audio's length.
    allow_silent : bool

    Yields
    ------
    start : float
        Seconds.
    window : np.ndarray, shape (round(sr * duration),), float32
        (shorter with ``pad="none"`` when the audio ends inside it).

    Raises
    ------
    AudioError
        As :func:`read_segment` for the whole file.
    """
    path = Path(path)
    if pad not in PAD_POLICIES + ("none",):
        raise AudioError(f"padding policy must be one of {', '.join(PAD_POLICIES + ('none',))}, got {pad!r}")
    if starts not in ("header", "audio"):
        raise AudioError(f"starts must be 'header' or 'audio', got {starts!r}")
    n = int(round(sr * duration))
    step = _hop_samples(hop, sr)
    planned = window_starts(clip_samples(path, sr), n, step, path=path, sr=sr) if starts == "header" else None
    blocks = _mono_blocks(path, sr)
    buf, buf0 = np.zeros(0, np.float32), 0  # the samples kept, and the index of the first
    peak, eof = 0.0, False

    def fill(upto: int) -> None:
        nonlocal buf, peak, eof
        got = [buf]
        end = buf0 + len(buf)
        while end < upto and not eof:
            y = next(blocks, None)
            if y is None:
                eof = True
                break
            peak = max(peak, float(np.max(np.abs(y))))
            got.append(y)
            end += len(y)
        if len(got) > 1:
            buf = np.concatenate(got)

    def window(s: int) -> np.ndarray:
        piece = buf[max(0, s - buf0):max(0, s + n - buf0)]
        return piece.copy() if pad == "none" else np.array(pad_to(piece, n, policy=pad))

    def trim(keep_from: int) -> None:
        """Forget the samples before ``keep_from``, keeping the last ``n`` read (an end-aligned window)."""
        nonlocal buf, buf0
        cut = min(max(0, min(keep_from, buf0 + len(buf) - n) - buf0), len(buf))
        if cut:
            buf, buf0 = buf[cut:], buf0 + cut

    if planned is not None:
        for k, s in enumerate(planned):
            fill(s + n)
            yield s / sr, window(s)
            trim(planned[k + 1] if k + 1 < len(planned) else s + n)
    else:  # windows every step while they fit, then one aligned to the end (window_starts of the audio's length)
        s, last = 0, None
        while True:
            fill(s + n)
            if buf0 + len(buf) < s + n:
                break
            if s // step + 1 >= MAX_WINDOWS:
                raise AudioError(f"{path}: cut into windows every {step / sr:.6g} s gives more than {MAX_WINDOWS:,} "
                                 "windows per file; use a longer hop")
            yield s / sr, window(s)
            last = s
            s += step
            trim(s)
        total = buf0 + len(buf)
        if last is None:
            yield 0.0, window(0)
        elif last + n < total:
            yield (total - n) / sr, window(total - n)
    for y in blocks:  # the rest of the file: its samples are checked as read_segment checks them
        peak = max(peak, float(np.max(np.abs(y))))
    if not allow_silent and peak < SILENCE_PEAK:
        raise AudioError(f"{path}: silent audio (peak amplitude {peak:.2g}, below {SILENCE_PEAK:g})")


def iter_windows(path: str | os.PathLike, *, sr: int, duration: float, hop: float,
                 pad: str = "end") -> Iterator[tuple[float, np.ndarray]]:
    """Stream ``(start seconds, window)`` over a recording of any length, one bounded read per window.

    Memory stays at one window (plus a resampling margin) whatever the file's
    length. Silent windows are yielded as they are.
    """
    total = clip_samples(path, sr)
    if total == 0:
        raise AudioError(f"{path}: zero-length audio (0 samples)")
    n = int(round(sr * duration))
    for s in window_starts(total, n, _hop_samples(hop, sr), path=path, sr=sr):
        seg = read_segment(path, sr=sr, start=s / sr, duration=duration, allow_silent=True)
        yield s / sr, pad_to(seg, n, policy=pad)
