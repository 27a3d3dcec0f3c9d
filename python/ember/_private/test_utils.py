"""``ray._private.test_utils``'s helper that test suites call while they are collected, so a
suite written for Ray imports on ember: ``generate_system_config_map``."""

from __future__ import annotations


def generate_system_config_map(**settings) -> dict:
    """The keyword arguments of ``init()`` that set these ``_system_config`` entries, as a
    fixture's parameter (``{"_system_config": settings}``). init() then refuses, by name, any
    entry ember's node has no such setting for."""
    return {"_system_config": dict(settings)}
