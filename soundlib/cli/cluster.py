"""``--scheduler`` on ``embed``, ``evaluate`` and ``train``: the embedding cache filled on a Dask cluster, in
shards of clips (:mod:`soundlib.sweep.shards`), before the rest of the command runs here."""

from __future__ import annotations

import argparse
import contextlib
import sys

from soundlib.cli.options import backbone_from_args, embed_config_from_args
from soundlib.text import visible

__all__ = ["cluster", "fill_on_cluster", "embed_on_cluster"]


@contextlib.contextmanager
def cluster(args: argparse.Namespace):
    """The Dask client of ``--scheduler`` (``None`` without it), connected before any other work and closed
    after: a bad address or an unreachable scheduler is one error line at once
    (:func:`soundlib.sweep.executors.connect_scheduler`)."""
    address = getattr(args, "scheduler", None)
    if address is None:
        yield None
        return
    from soundlib.errors import ConfigError
    from soundlib.sweep.executors import connect_scheduler, parse_scheduler

    parse_scheduler(address)
    if getattr(args, "no_cache", False):
        raise ConfigError("--scheduler fills the embedding cache on the cluster; it cannot be used with --no-cache")
    client = connect_scheduler(address)
    try:
        yield client
    finally:
        with contextlib.suppress(Exception):
            client.close()


def fill_on_cluster(args: argparse.Namespace, client, ds, config) -> None:
    """``evaluate`` / ``train --scheduler``: fill the caches the method reads on the cluster, sharded; the run
    then reads them here. A fill that fails is reported, and the run computes what is missing itself."""
    from soundlib.methods import cache_units
    from soundlib.sweep.shards import fill_units

    embed = embed_config_from_args(args)
    units = cache_units(config.method, config.spec, config.backbone).values()
    for unit, report in fill_units(ds, units, client=client, cache_dir=embed.cache_dir, batch_size=embed.batch_size,
                                   progress=not args.quiet):
        print(visible(f"{unit.label} on {args.scheduler}: {report.summary()}"))
        for msg in report.errors:
            print(visible(f"soundlib {args.command}: warning: {msg}"), file=sys.stderr)


def embed_on_cluster(args: argparse.Namespace, client, ds, spec) -> int:
    """``soundlib embed --scheduler``: the cache filled on a Dask cluster, one task per shard of clips."""
    from soundlib.embedders import resolve_embedder
    from soundlib.pictures.variants import resolve_for_clips
    from soundlib.sweep.shards import fill_sharded

    spec, _ = resolve_for_clips(spec, ds.clips)
    embedder = resolve_embedder(backbone_from_args(args))
    embed = embed_config_from_args(args)
    report = fill_sharded(ds.clips, embedder.window(spec), embedder, client=client, cache_dir=embed.cache_dir,
                          batch_size=embed.batch_size, progress=embed.progress)
    print(visible(f"embed {spec.name} ({spec.seconds:g}-s window) on {args.scheduler}: {report.summary()}"))
    for _, msg in report.failures:
        print(f"  {visible(msg)}", file=sys.stderr)
    for msg in report.errors:
        print(f"  {visible(msg)}", file=sys.stderr)
    return 0 if report.ok else 1
