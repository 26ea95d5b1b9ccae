"""Dataset downloads through ``soundata`` (real users have internet; tests serve a local copy)."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import DatasetError

__all__ = ["download", "DOWNLOADABLE"]

#: soundlib name -> soundata loader name.
DOWNLOADABLE = {"urbansound8k": "urbansound8k", "esc50": "esc50"}


def download(name: str, data_home: str | os.PathLike, *, validate: bool = True) -> Path:
    """Download a public dataset with ``soundata`` into ``data_home``.

    Returns ``data_home``; open it with :func:`load_dataset`. Raises
    :class:`DatasetError` with a clear message when the network cannot be reached.
    """
    key = name.lower().replace("-", "").replace("_", "")
    if key not in DOWNLOADABLE:
        raise DatasetError(f"unknown dataset {name!r}; expected one of {', '.join(DOWNLOADABLE)}")
    import soundata

    data_home = Path(data_home).expanduser()
    data_home.mkdir(parents=True, exist_ok=True)
    ds = soundata.initialize(DOWNLOADABLE[key], data_home=str(data_home))
    try:
        ds.download()
    except Exception as exc:  # urllib/requests raise many types when offline
        raise DatasetError(
            f"could not download {name} into {data_home}: {type(exc).__name__}: {exc}. "
            "Check the network connection (downloads need internet), or place the dataset there by hand."
        ) from None
    if validate:
        missing, invalid = ds.validate(verbose=False)
        bad = sum(len(v) for v in missing.values()) + sum(len(v) for v in invalid.values()) if isinstance(
            missing, dict) else 0
        if bad:
            raise DatasetError(f"{data_home}: {bad} file(s) missing or with a wrong checksum after download")
    return data_home
