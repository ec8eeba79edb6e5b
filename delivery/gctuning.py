"""The garbage collector's settings for a delivery run.

A worker process holds some hundred thousand long-lived objects (Django, the models, every imported module),
and a run allocates millions of short-lived ones. With CPython's default thresholds a collection of the young
generation starts every 700 net allocations of containers, and every so often a full collection walks all
the long-lived objects again: measured with `bench_delivery` at 0 ms latency, about a fifth of a worker's CPU
went to the collector. Reference counting frees nearly everything a run makes the moment it is done with it;
the collector is only needed for reference cycles (a few per call: futures and exceptions), which wait a
little longer now.

`tuned_for_delivery` moves the objects that exist when the run starts out of the collector's sight
(`gc.freeze`), and collects the young generation after YOUNG_THRESHOLD net allocations instead of 700; both are
undone when the run ends (objects a server froze on purpose before the run stay frozen). The benchmark's bare
ceiling runs under the same settings, so the comparison stays like for like.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

YOUNG_THRESHOLD = 50_000


@contextlib.contextmanager
def tuned_for_delivery() -> Iterator[None]:
    before = gc.get_threshold()
    frozen_by_someone_else = gc.get_freeze_count() > 0  # e.g. a server that froze its objects before forking
    gc.freeze()  # garbage that exists already is frozen too, and collected as usual after the run
    gc.set_threshold(YOUNG_THRESHOLD, *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)
        if not frozen_by_someone_else:
            gc.unfreeze()
