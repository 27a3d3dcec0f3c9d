"""as_completed and map_unordered: results as they finish, in chunks (Ray's ray.util names).

Both are loops over ``api.wait``: ``wait`` returns ready refs in the order they were given,
so "as completed" means chunk by chunk, each chunk in submission order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from ember import api

__all__ = ["as_completed", "map_unordered"]


def _check(chunk_size: int, wait_kwargs: dict) -> None:
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError("`chunk_size` must be an int >= 1")
    if "num_returns" in wait_kwargs:
        raise ValueError("give `chunk_size` instead of `num_returns`")


def _next_chunk(refs: list, chunk_size: int, yield_obj_refs: bool, wait_kwargs: dict):
    """(values or refs of the next chunk to finish, the refs still pending)."""
    ready, pending = api.wait(refs, num_returns=min(chunk_size, len(refs)), **wait_kwargs)
    return (ready if yield_obj_refs else api.get(ready)), pending


def as_completed(refs: Sequence, *, chunk_size: int = 10, yield_obj_refs: bool = False,
                 **wait_kwargs) -> Iterator[Any]:
    """Yields the results of `refs` (or, with `yield_obj_refs`, the refs) as soon as each chunk
    of `chunk_size` of them is ready, instead of waiting for all as ``get(refs)`` does.
    `wait_kwargs` (e.g. ``timeout``) go to each ``api.wait``."""
    _check(chunk_size, wait_kwargs)
    pending = list(refs)
    while pending:
        done, pending = _next_chunk(pending, chunk_size, yield_obj_refs, wait_kwargs)
        yield from done


def map_unordered(fn, items: Iterable, *, backpressure_size: int | None = 100,
                  chunk_size: int = 10, yield_obj_refs: bool = False,
                  **wait_kwargs) -> Iterator[Any]:
    """Runs ``fn.remote(item)`` for each item, at most `backpressure_size` of them in flight
    (None: no limit), and yields results (or refs) chunk by chunk as they finish."""
    if backpressure_size is not None and backpressure_size <= 0:
        raise ValueError("`backpressure_size` must be positive (or None for no limit)")
    _check(chunk_size, wait_kwargs)
    limit = float("inf") if backpressure_size is None else backpressure_size
    pending: list = []
    for item in items:
        pending.append(fn.remote(item))
        if len(pending) >= limit:
            done, pending = _next_chunk(pending, chunk_size, yield_obj_refs, wait_kwargs)
            yield from done
    yield from as_completed(pending, chunk_size=chunk_size, yield_obj_refs=yield_obj_refs,
                            **wait_kwargs)
