"""runtime_env on ember's node: env_vars, working_dir, py_modules at job, task and actor
level, merged as Ray merges them; workers never shared across runtime envs; every key that
would install something refused by name."""

from __future__ import annotations

import os
import time

import pytest

import ember
from ember.exceptions import RuntimeEnvSetupError

from .conftest import STORE_BYTES

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def job_node():
    ember.init(num_cpus=2, object_store_memory=STORE_BYTES,
               runtime_env={"env_vars": {"JOB": "j", "BOTH": "job"}})
    try:
        yield ember._node.current()
    finally:
        ember.shutdown()


@ember.remote
def environ(*keys):
    return [os.environ.get(k) for k in keys], os.getpid()


def test_job_env_vars_reach_every_worker_and_a_task_merges_its_own_over_them(job_node):
    assert ember.get(environ.remote("JOB", "BOTH", "TASK"))[0] == ["j", "job", None]
    own = environ.options(runtime_env={"env_vars": {"TASK": "t", "BOTH": "task"}})
    values, env_pid = ember.get(own.remote("JOB", "BOTH", "TASK"))
    assert values == ["j", "task", "t"]  # env_vars merged key by key, the task's winning
    # The worker that ran it is retired: no later task shares its process or sees its vars.
    later = ember.get([environ.remote("TASK") for _ in range(20)])
    assert all(v == [None] for v, _ in later)
    assert env_pid not in {pid for _, pid in later}
    assert "TASK" not in os.environ and "JOB" not in os.environ  # the driver is untouched


def test_working_dir_and_py_modules_are_importable_and_working_dir_is_the_cwd(node, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "helper_in_wd.py").write_text("VALUE = 41\n")
    package = tmp_path / "libs" / "pkg_in_modules"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("def plus_one(x):\n    return x + 1\n")

    @ember.remote(runtime_env={"working_dir": str(work), "py_modules": [str(package)]})
    def uses_both():
        import helper_in_wd  # noqa: PLC0415
        import pkg_in_modules  # noqa: PLC0415

        return os.getcwd(), pkg_in_modules.plus_one(helper_in_wd.VALUE)

    assert ember.get(uses_both.remote()) == (str(work), 42)

    @ember.remote
    def plain():
        try:
            import helper_in_wd  # noqa: F401, PLC0415
        except ImportError:
            return "not importable"
        return "importable"

    assert set(ember.get([plain.remote() for _ in range(4)])) == {"not importable"}


def test_an_actor_keeps_its_runtime_env_for_life_and_the_context_shows_it(job_node):
    @ember.remote(runtime_env={"env_vars": {"ACTOR": "a"}})
    class Holder:
        def read(self):
            time.sleep(0.01)
            return os.environ.get("ACTOR"), os.environ.get("JOB"), \
                ember.get_runtime_context().runtime_env

    h = Holder.remote()
    for _ in range(3):
        actor_value, job_value, seen = ember.get(h.read.remote())
        assert (actor_value, job_value) == ("a", "j")
        assert seen == {"env_vars": {"JOB": "j", "BOTH": "job", "ACTOR": "a"}}
    assert ember.get_runtime_context().runtime_env == {"env_vars": {"JOB": "j", "BOTH": "job"}}


def test_a_generator_task_sees_its_runtime_env_while_it_yields(node):
    @ember.remote(runtime_env={"env_vars": {"STREAMED": "yes"}})
    def stream(n):
        for _ in range(n):
            yield os.environ.get("STREAMED")

    assert [ember.get(r) for r in stream.remote(3)] == ["yes"] * 3


@pytest.mark.parametrize(("env", "error", "words"), [
    ({"pip": ["requests"]}, RuntimeEnvSetupError, "install the packages"),
    ({"uv": ["requests"]}, RuntimeEnvSetupError, "uv pip install"),
    ({"conda": "myenv"}, RuntimeEnvSetupError, "conda environment"),
    ({"container": {"image": "x"}}, RuntimeEnvSetupError, "container"),
    ({"working_dir": "s3://bucket/code.zip"}, RuntimeEnvSetupError, "local paths"),
    ({"working_dir": "/no/such/dir"}, RuntimeEnvSetupError, "no such directory"),
    ({"py_modules": ["/no/such/module"]}, RuntimeEnvSetupError, "not a package directory"),
    ({"excludes": ["*.log"]}, RuntimeEnvSetupError, "without copying"),
    ({"unheard_of": 1}, RuntimeEnvSetupError, "unknown key 'unheard_of'"),
    ({"env_vars": {"A": 1}}, TypeError, "dict of str to str"),
    ({"config": {"retries": 2}}, ValueError, "setup_timeout_seconds"),
], ids=lambda v: next(iter(v)) if isinstance(v, dict) else "")
def test_what_ember_cannot_set_up_is_refused_at_the_call(node, env, error, words):
    with pytest.raises(error, match=words):
        environ.options(runtime_env=env).remote()
    with pytest.raises(error, match=words):

        @ember.remote(runtime_env=env)
        class Nope:
            pass

        Nope.remote()


def test_a_job_runtime_env_ember_cannot_set_up_fails_init_and_leaves_no_node():
    with pytest.raises(RuntimeEnvSetupError, match="pip"):
        ember.init(num_cpus=1, runtime_env={"pip": ["requests"]})
    assert not ember.is_initialized()
