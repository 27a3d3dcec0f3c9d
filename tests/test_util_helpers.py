"""ember.util.as_completed and map_unordered."""

from __future__ import annotations

import time

import pytest

import ember
from ember.util import as_completed, map_unordered


@pytest.fixture(scope="module")
def node(shared_node):
    return shared_node


@ember.remote
def nap(seconds):
    time.sleep(seconds)
    return seconds


def test_as_completed_yields_finished_chunks_first(node):
    refs = [nap.remote(s) for s in (1.0, 0.0, 0.0)]
    got = as_completed(refs, chunk_size=2)
    assert [next(got), next(got)] == [0.0, 0.0]  # before the long one
    assert list(got) == [1.0]
    as_refs = list(as_completed([nap.remote(0)], yield_obj_refs=True))
    assert isinstance(as_refs[0], ember.ObjectRef) and ember.get(as_refs[0]) == 0


def test_map_unordered_keeps_at_most_backpressure_tasks_in_flight(node):
    submitted = []

    class Counting:
        def remote(self, item):
            submitted.append(item)
            return nap.remote(item)

    gen = map_unordered(Counting(), [0.0] * 10, backpressure_size=3, chunk_size=1)
    first = next(gen)
    assert first == 0.0 and len(submitted) == 3  # stopped submitting at the limit
    assert sorted([first, *gen]) == [0.0] * 10 and len(submitted) == 10


@pytest.mark.parametrize("kwargs", [{"chunk_size": 0}, {"num_returns": 2}])
def test_bad_arguments(node, kwargs):
    with pytest.raises(ValueError):
        list(as_completed([nap.remote(0)], **kwargs))
    with pytest.raises(ValueError):
        list(map_unordered(nap, [0], **kwargs))
    with pytest.raises(ValueError, match="backpressure"):
        list(map_unordered(nap, [0], backpressure_size=0))
