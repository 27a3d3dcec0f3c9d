"""ember.util.joblib: joblib's ``Parallel`` on ember (Ray's ``ray.util.joblib``).

    from ember.util.joblib import register_ember
    register_ember()
    with joblib.parallel_backend("ember"):
        search.fit(X, y)  # scikit-learn's n_jobs run as ember tasks

``register_ray()`` registers the same backend under Ray's name ``"ray"``, so a program written
for Ray's backend runs unchanged. joblib is imported here, not with ember.
"""

from __future__ import annotations

__all__ = ["register_ember", "register_ray"]


def register_ember(name: str = "ember") -> None:
    """Makes ``joblib.parallel_backend(name)`` run joblib's calls on ember; starts no node
    (the first ``Parallel`` call does, if none runs)."""
    import joblib  # noqa: PLC0415 (joblib is the caller's, imported on use)

    from ember.util.joblib.ray_backend import EmberBackend  # noqa: PLC0415

    joblib.register_parallel_backend(name, EmberBackend)


def register_ray() -> None:
    """register_ember() under Ray's name: ``joblib.parallel_backend("ray")``."""
    register_ember("ray")
