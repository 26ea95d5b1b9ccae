"""Dataset downloads: the archive ``soundata`` names, fetched, verified and unpacked by soundlib.

soundata 1.0.1 (the version soundlib pins) knows where each dataset's
archive lives (URL, MD5, the folder inside it), but its own
``Dataset.download()`` cannot be used:

* ``soundata/download_utils.py`` calls ``urllib.request.urlretrieve`` after
  only ``import urllib``, so every download fails with ``AttributeError:
  module 'urllib' has no attribute 'request'`` before touching the network
  (unless some other module happened to import ``urllib.request`` first);
* it writes the archive under its final name while downloading, so an
  interrupted transfer leaves a file that later runs take as downloaded, and
  it unpacks into the data folder in place (``tarfile.extractall`` without a
  filter, so an archive can also write outside it).

So soundlib reads only the archive's record from soundata
(:func:`remote_archive`) and does the rest itself (:func:`download`): the
archive is fetched to a ``.part`` file, its length and MD5 are checked, it is
unpacked into a staging folder inside the data folder with members that
would land outside refused, and only then are its files moved into place,
the metadata last. The data folder carries ``.soundlib-incomplete`` until
everything is in place, and :func:`soundlib.audio.loaders.load_dataset` refuses a
folder that carries it: nothing half-extracted is taken as complete.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
from pathlib import Path

from soundlib.errors import DatasetError

__all__ = ["download", "remote_archive", "RemoteArchive", "DOWNLOADABLE", "DEADLINE_ENV", "download_deadline",
           "fetch_url", "Fetched"]

#: soundlib name -> soundata loader name.
DOWNLOADABLE = {"urbansound8k": "urbansound8k", "esc50": "esc50"}
#: Staging folder inside the data folder: the ``.part`` download, the verified archive, the unpacked tree.
STAGING = ".soundlib-download"
#: Folders holding a dataset's metadata; moved into place last.
_METADATA_DIRS = ("metadata", "meta")
_CHUNK = 1 << 20
#: Seconds a whole download may take (see :func:`download_deadline`).
DEADLINE_ENV = "SOUNDLIB_DOWNLOAD_DEADLINE"
#: A transfer is abandoned when it averages under ``_MIN_RATE`` bytes/s over ``_STALL_WINDOW`` seconds.
_MIN_RATE = 1024
_STALL_WINDOW = 60.0


@dataclasses.dataclass(frozen=True)
class RemoteArchive:
    """Where a dataset's archive is and how to check and unpack it.

    Attributes
    ----------
    filename : str
        The archive's file name (``.tar.gz``, ``.tgz``, ``.tar`` or ``.zip``).
    url : str
    md5 : str
        MD5 of the whole archive, hex.
    unpack_dirs : tuple of str
        Folders inside the archive whose contents make the data folder
        (UrbanSound8K: ``UrbanSound8K``); empty: the archive's top level.
    """

    filename: str
    url: str
    md5: str
    unpack_dirs: tuple[str, ...] = ()


def _key(name: str) -> str:
    key = str(name).lower().replace("-", "").replace("_", "")
    if key not in DOWNLOADABLE:
        raise DatasetError(f"unknown dataset {name!r}; expected one of {', '.join(DOWNLOADABLE)}")
    return key


def remote_archive(name: str) -> RemoteArchive:
    """The archive record of dataset ``name`` (``urbansound8k`` or ``esc50``), as soundata keeps it."""
    import importlib

    key = _key(name)
    try:
        module = importlib.import_module(f"soundata.datasets.{DOWNLOADABLE[key]}")
        remote = module.REMOTES["all"]
        return RemoteArchive(filename=str(remote.filename), url=str(remote.url), md5=str(remote.checksum),
                             unpack_dirs=tuple(remote.unpack_directories or ()))
    except (ImportError, AttributeError, KeyError, TypeError) as exc:
        raise DatasetError(f"soundata does not describe the {name} archive as soundlib expects "
                           f"({type(exc).__name__}: {exc}); soundlib is tested with soundata 1.0.1") from None


def download(name: str, data_home: str | os.PathLike, *, validate: bool = True, progress: bool = True,
             timeout: float = 60.0) -> Path:
    """Download a public dataset into ``data_home`` and check it.

    Parameters
    ----------
    name : {"urbansound8k", "esc50"}
    data_home : path-like
        The data folder; afterwards :func:`soundlib.audio.loaders.load_dataset` opens it.
        It must not already hold other files under the names the archive uses.
    validate : bool
        After unpacking, open the dataset and check that every file its metadata
        lists is there. (The archive's MD5 is always checked.)
    progress : bool
        Show a progress bar.
    timeout : float
        Seconds to wait for the server at each step.

    Returns
    -------
    Path
        ``data_home``.

    Raises
    ------
    DatasetError
        Naming the cause: the server unreachable or answering an error, a transfer
        cut short, an MD5 mismatch, a bad archive, a data folder that holds other
        files. Nothing half-written is ever left looking complete.
    """
    from soundlib.audio.datasets import INCOMPLETE_MARKER

    key = _key(name)
    remote = remote_archive(key)
    data_home = Path(data_home).expanduser()
    staging = data_home / STAGING
    if _installed(data_home, remote):
        return data_home
    try:
        staging.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetError(f"{data_home}: cannot create the data folder ({exc.strerror or exc})") from None
    archive = _fetch_verified(remote, staging, progress=progress, timeout=timeout)
    _check_targets(data_home, remote, _archive_names(archive))
    (data_home / INCOMPLETE_MARKER).write_text(f"soundlib is unpacking {remote.filename} here\n")
    tree = _unpack(archive, staging)
    _move_into_place(tree, remote, data_home)
    if validate:
        _validate(data_home, key)
    _write_record(data_home, remote)
    (data_home / INCOMPLETE_MARKER).unlink()
    shutil.rmtree(staging, ignore_errors=True)
    return data_home


def _record_path(data_home: Path) -> Path:
    return data_home / ".soundlib-download.json"


def _installed(data_home: Path, remote: RemoteArchive) -> bool:
    """True when a previous :func:`download` of this archive finished here."""
    import json

    from soundlib.audio.datasets import INCOMPLETE_MARKER

    try:
        record = json.loads(_record_path(data_home).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (isinstance(record, dict) and record.get("md5") == remote.md5
            and not (data_home / INCOMPLETE_MARKER).exists())


def _write_record(data_home: Path, remote: RemoteArchive) -> None:
    from soundlib.atomic import write_json_atomic

    write_json_atomic(_record_path(data_home), dataclasses.asdict(remote))


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _fetch_verified(remote: RemoteArchive, staging: Path, *, progress: bool, timeout: float) -> Path:
    """The archive in ``staging``, complete and with the right MD5 (downloaded unless already there)."""
    archive = staging / remote.filename
    if archive.is_file() and _md5(archive) == remote.md5:
        return archive  # verified by an earlier, interrupted run
    archive.unlink(missing_ok=True)
    part = staging / (remote.filename + ".part")
    try:
        got = _fetch(remote.url, part, progress=progress, timeout=timeout).md5
        if got != remote.md5:
            raise DatasetError(
                f"{remote.url}: the downloaded file has MD5 {got}, expected {remote.md5}: it is corrupt or the "
                "server sent another file; it was deleted and nothing was unpacked. Run the download again; if "
                "it keeps failing, the file on the server changed")
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, archive)
    return archive


def _fetch(url: str, dest: Path, *, progress: bool, timeout: float) -> "Fetched":
    """Stream ``url`` into ``dest``; :class:`DatasetError` naming the cause when it fails or is cut short."""
    return fetch_url(url, dest, error=DatasetError, what="the archive", timeout=timeout, progress=progress,
              hint="the partial file was deleted. Run the download again; without internet, place the dataset "
                   "in the data folder by hand")


@dataclasses.dataclass(frozen=True)
class Fetched:
    """What :func:`fetch_url` wrote: its length in bytes and its digests (hex)."""

    received: int
    sha256: str
    md5: str


def download_deadline(size: int | None = None) -> float:
    """Seconds a whole download may take: ``$SOUNDLIB_DOWNLOAD_DEADLINE`` when set, else 5 minutes plus the
    time ``size`` bytes take at 256 KiB/s (unknown size: one day).

    Raises
    ------
    ConfigError
        ``$SOUNDLIB_DOWNLOAD_DEADLINE`` is not a positive number of seconds.
    """
    import math

    from soundlib.errors import ConfigError

    raw = os.environ.get(DEADLINE_ENV, "").strip()
    if raw:
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(f"${DEADLINE_ENV}={raw!r}: expected a positive number of seconds")
        return value
    return 86400.0 if size is None else 300.0 + size / (256 * 1024)


def fetch_url(url: str, dest: str | os.PathLike, *, error: type[Exception] = DatasetError, what: str = "the file",
              size: int | None = None, deadline: float | None = None, timeout: float = 60.0,
              progress: bool = False, hint: str = "") -> "Fetched":
    """Download ``url`` into the file ``dest`` (created or truncated) under one deadline and a size limit.

    Parameters
    ----------
    url : str
    dest : path-like
        Where the bytes go (a temporary file: the caller renames or deletes it).
    error : exception class
        What every failure raises (one line: the URL, the cause, the bytes received, then ``hint``).
    what : str
        What is downloaded, for messages.
    size : int, optional
        The file's known size: a server announcing another ``Content-Length`` is refused before
        anything is written, and no byte past ``size`` is ever written.
    deadline : float, optional
        Seconds the whole transfer may take (default :func:`download_deadline`); a server sending
        less than 1 KiB/s over a minute is abandoned as well.
    timeout : float
        Seconds to wait for any single answer of the server.
    progress : bool
        Show a progress bar.
    hint : str
        Appended to every message (what to do next).

    Returns
    -------
    Fetched
        The number of bytes written and their SHA-256 and MD5.
    """
    import http.client
    import socket
    import time
    import urllib.error
    import urllib.request  # imported here: soundata 1.0.1 forgets to (see the module docstring)

    from tqdm.auto import tqdm

    deadline = download_deadline(size) if deadline is None else float(deadline)
    start = time.monotonic()
    tail = f"; {hint}" if hint else ""
    request = urllib.request.Request(url, headers={"User-Agent": "soundlib"})
    sha, md5 = hashlib.sha256(), hashlib.md5()
    received, total = 0, None
    try:
        with urllib.request.urlopen(request, timeout=min(timeout, deadline)) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.strip().isdigit() else None
            if size is not None and total is not None and total != size:
                raise error(f"cannot download {what} from {url}: the server announces {total:,} bytes, "
                            f"expected {size:,}; nothing was kept{tail}")
            limit = size if size is not None else total
            read = getattr(response, "read1", response.read)  # read1: no waiting for a whole block
            mark = (start, 0)
            with open(dest, "wb") as fh, tqdm(total=limit, unit="B", unit_scale=True, unit_divisor=1024,
                                             desc=Path(Path(dest).name).stem, disable=not progress) as bar:
                while True:
                    now = time.monotonic()
                    if now - start > deadline:
                        of = f" of {limit:,}" if limit is not None else ""
                        raise error(f"cannot download {what} from {url}: not finished within the deadline of "
                                    f"{deadline:g} s ({received:,}{of} bytes received; ${DEADLINE_ENV} sets "
                                    f"it){tail}")
                    if now - mark[0] >= _STALL_WINDOW:
                        if received - mark[1] < _MIN_RATE * (now - mark[0]):
                            raise error(f"cannot download {what} from {url}: the server sent only "
                                        f"{received - mark[1]:,} bytes in the last {now - mark[0]:.0f} s "
                                        f"({received:,} in all){tail}")
                        mark = (now, received)
                    block = read(_CHUNK if limit is None else max(1, min(_CHUNK, limit + 1 - received)))
                    if not block:
                        break
                    if limit is not None and received + len(block) > limit:
                        raise error(f"cannot download {what} from {url}: the server sent more than the "
                                    f"{limit:,} bytes expected; nothing was kept{tail}")
                    fh.write(block)
                    sha.update(block)
                    md5.update(block)
                    received += len(block)
                    bar.update(len(block))
    except urllib.error.HTTPError as exc:
        raise error(f"cannot download {what} from {url}: the server answered HTTP {exc.code} {exc.reason}"
                    f"{tail}") from None
    except http.client.IncompleteRead as exc:
        received += len(exc.partial)
    except (urllib.error.URLError, socket.timeout, ConnectionError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise error(f"{url}: could not download {what} ({type(exc).__name__}: {reason}) after {received:,} bytes; "
                    f"check the network (the address, a proxy, the connection){tail}") from None
    except OSError as exc:  # writing: disk full, file too large, permission denied
        raise error(f"{dest}: cannot write {what} ({exc.strerror or exc}){tail}") from None
    expected = size if size is not None else total
    if expected is not None and received != expected:
        raise error(f"cannot download {what} from {url}: the transfer was cut short after {received:,} of "
                    f"{expected:,} bytes{tail}")
    return Fetched(received, sha.hexdigest(), md5.hexdigest())


def _members_inside(names: list[str], archive: Path) -> None:
    """Refuse an archive with a member that would be written outside the folder it is unpacked into."""
    for name in names:
        parts = Path(name.replace("\\", "/")).parts
        if Path(name).is_absolute() or name.startswith(("/", "\\")) or ".." in parts:
            raise DatasetError(f"{archive}: member {name!r} would be written outside the data folder; "
                               "the archive was not unpacked")


def _unpack(archive: Path, staging: Path) -> Path:
    """Unpack ``archive`` into a fresh folder in ``staging``; return that folder."""
    import tarfile
    import zipfile

    from soundlib.atomic import make_temp_dir

    tree = make_temp_dir(staging, "unpack-")
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(tree)
        else:
            with tarfile.open(archive) as tf:
                try:
                    tf.extractall(tree, filter="data")  # no links out, no devices, no setuid bits
                except TypeError:  # Python without extraction filters (before 3.10.12 / 3.11.4)
                    tf.extractall(tree)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
        shutil.rmtree(tree, ignore_errors=True)
        archive.unlink(missing_ok=True)
        raise DatasetError(f"{archive}: not a readable archive ({type(exc).__name__}: {exc}); it was deleted, "
                           "run the download again") from None
    except OSError as exc:
        shutil.rmtree(tree, ignore_errors=True)
        raise DatasetError(f"{archive}: cannot unpack ({exc.strerror or exc})") from None
    except BaseException:
        shutil.rmtree(tree, ignore_errors=True)
        raise
    return tree


def _sources(tree: Path, remote: RemoteArchive, archive: Path) -> list[Path]:
    """The entries that go into the data folder, metadata folders last."""
    roots = [tree / d for d in remote.unpack_dirs] or [tree]
    for r in roots:
        if not r.is_dir():
            raise DatasetError(f"{archive}: the archive holds no folder {r.name!r}; its layout is not the one "
                               "soundata 1.0.1 describes")
    entries = [e for r in roots for e in sorted(r.iterdir())]
    return sorted(entries, key=lambda e: e.name in _METADATA_DIRS)


def _archive_names(archive: Path) -> list[str]:
    """The member names of ``archive``; :class:`DatasetError` for an unreadable archive or a member that
    would land outside the folder it is unpacked into."""
    import tarfile
    import zipfile

    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                names = zf.namelist()
        else:
            with tarfile.open(archive) as tf:
                names = tf.getnames()
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        archive.unlink(missing_ok=True)
        raise DatasetError(f"{archive}: not a readable archive ({type(exc).__name__}: {exc}); it was deleted, "
                           "run the download again") from None
    _members_inside(names, archive)
    return names


def _check_targets(data_home: Path, remote: RemoteArchive, names: list[str]) -> None:
    """Refuse to unpack over files that an earlier soundlib download did not put there."""
    from soundlib.audio.datasets import INCOMPLETE_MARKER

    if (data_home / INCOMPLETE_MARKER).exists() or _record_path(data_home).exists():
        return  # ours: an unfinished or older download
    prefixes = [d.strip("/") + "/" for d in remote.unpack_dirs] or [""]
    tops = {n[len(p):].split("/")[0] for n in names for p in prefixes if n.startswith(p) and n[len(p):]}
    taken = sorted(t for t in tops if (data_home / t).exists())
    if taken:
        raise DatasetError(f"{data_home}: already holds {', '.join(taken)}, which soundlib did not download; "
                           "it will not replace them: choose an empty --data-home")


def _move_into_place(tree: Path, remote: RemoteArchive, data_home: Path) -> None:
    """Move the unpacked entries into ``data_home`` (replacing those of an unfinished earlier run)."""
    from soundlib.atomic import apply_umask, replace_dir

    for entry in _sources(tree, remote, tree.parent / remote.filename):
        apply_umask(entry)
        target = data_home / entry.name
        if entry.is_dir() and not entry.is_symlink():
            replace_dir(entry, target)
        else:
            os.replace(entry, target)
    shutil.rmtree(tree, ignore_errors=True)


def _validate(data_home: Path, key: str) -> None:
    """Open the unpacked dataset with its own loader and check every listed file is there."""
    from soundlib.audio.loaders import load_esc50, load_urbansound8k
    from soundlib.errors import SoundlibError

    loader = {"urbansound8k": load_urbansound8k, "esc50": load_esc50}[key]
    try:
        loader(data_home, check_files=True)
    except SoundlibError as exc:
        raise DatasetError(f"{data_home}: {key} was downloaded and unpacked but is not complete: {exc}") from None
