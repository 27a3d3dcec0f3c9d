"""The package itself: version, public names, Ray-compatible names."""

import pathlib
import re

import ember
import ember.exceptions
from ember import _core


def test_version_comes_from_pyproject():
    pyproject = pathlib.Path(__file__).parents[1] / "pyproject.toml"
    declared = re.search(r'^version = "([^"]+)"', pyproject.read_text(), re.M).group(1)
    assert ember.__version__ == declared
    assert _core.__version__ == declared  # the same version reached the C++ build


def test_public_names():
    for name in ["init", "shutdown", "is_initialized", "put", "get", "ObjectRef"]:
        assert name in ember.__all__
        assert hasattr(ember, name)


def test_exception_hierarchy_under_both_names():
    exc = ember.exceptions
    assert issubclass(exc.ObjectStoreFullError, exc.EmberError)
    assert issubclass(exc.ObjectStoreFullError, MemoryError)
    assert exc.RayError is exc.EmberError
    assert issubclass(exc.NotInitializedError, RuntimeError)
