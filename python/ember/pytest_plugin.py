"""A pytest plugin that runs a test suite written for Ray on ember, unchanged:

    pytest -p ember.pytest_plugin tests/

Loaded before any conftest.py or test module, it makes ``import ray`` give ember
(ember.as_ray()), in the test process and in the node's workers.
"""

from ember._alias import as_ray

as_ray()
