"""Programs written for Ray, run unchanged: ``ember run``, ``ember.as_ray()`` and the pytest
plugin make ``import ray`` give ember, in the driver and in its workers."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

RAY_PROGRAM = """
    import sys

    import ray
    import ray.exceptions
    from ray.util.queue import Queue

    import ember

    @ray.remote
    def fails():
        raise ValueError("x")

    @ray.remote
    def nested():  # `ray` unpickles in the worker too
        return ray.get(fails.remote())

    assert ray is ember and ray.util.queue.Queue is ember.util.queue.Queue
    ray.init(num_cpus=1)
    q = Queue()
    q.put(sys.argv[1:])
    print("argv", q.get())
    try:
        ray.get(nested.remote())
    except ray.exceptions.RayTaskError as e:
        print("error", type(e).__name__, str(e).split(chr(10))[0].split(" (")[0])
    ray.shutdown()
"""


def run(args, cwd, timeout=60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, check=False)


def write(path, text: str):
    path.write_text(textwrap.dedent(text))
    return path


def test_ember_run_runs_a_ray_program_unchanged(tmp_path):
    script = write(tmp_path / "prog.py", RAY_PROGRAM)
    result = run(["-m", "ember", "run", str(script), "a", "--b"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "argv ['a', '--b']" in result.stdout
    # Ray's names in what it shows, as the program expects from Ray.
    assert "error RayTaskError(ValueError) ray::nested()" in result.stdout


def test_ember_run_m_runs_a_module(tmp_path):
    write(tmp_path / "progmod.py", RAY_PROGRAM)
    result = run(["-m", "ember", "run", "-m", "progmod", "c"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "argv ['c']" in result.stdout


def test_a_ray_module_ember_lacks_fails_at_import_and_says_so(tmp_path):
    script = write(tmp_path / "data.py", """
        import ray.data
    """)
    result = run(["-m", "ember", "run", str(script)], cwd=tmp_path)
    assert result.returncode == 1
    assert "ModuleNotFoundError: No module named 'ray.data'" in result.stderr
    assert "ember has no ember.data" in result.stderr


def test_as_ray_after_the_real_ray_is_refused(tmp_path):
    pytest.importorskip("ray")  # the real Ray (the test extra installs it)
    result = run(["-c", textwrap.dedent("""
        import ray
        import ember
        try:
            ember.as_ray()
        except RuntimeError as e:
            print("refused:", e)
    """)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "refused: ember.as_ray() must run before Ray is imported" in result.stdout


def test_the_pytest_plugin_runs_a_ray_suite(tmp_path):
    write(tmp_path / "test_ray_suite.py", """
        import ray

        def test_on_ember():
            ray.init(num_cpus=1)
            try:
                assert ray.__name__ == "ember"
                assert ray.get(ray.put(41)) + 1 == 42
            finally:
                ray.shutdown()
    """)
    result = run(["-m", "pytest", "-q", "-p", "ember.pytest_plugin", "-p", "no:cacheprovider",
                  "test_ray_suite.py"], cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


@pytest.mark.parametrize("args", [[], ["walk"], ["run"], ["run", "-m"]])
def test_bad_command_lines_print_the_usage(tmp_path, args):
    result = run(["-m", "ember", *args], cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("usage: ember run script.py")


def test_a_ray_module_of_the_programs_own_stays_its_own_in_workers(tmp_path):
    # A `ray` package that forwards to ember (a shim) gets Ray's names in errors, but its
    # workers import that package, with its own modules, not ember's finder.
    (tmp_path / "ray").mkdir()
    write(tmp_path / "ray" / "__init__.py", """
        from ember import *  # noqa: F403
        from ember import get, init, remote, shutdown
    """)
    write(tmp_path / "ray" / "helpers.py", """
        def double(x):
            return 2 * x
    """)
    script = write(tmp_path / "prog.py", """
        import ray

        @ray.remote
        def uses_helpers(x):
            import ray.helpers
            return ray.helpers.double(x)

        @ray.remote
        def fails():
            raise ValueError("x")

        ray.init(num_cpus=1)
        print("result", ray.get(uses_helpers.remote(21)))
        try:
            ray.get(fails.remote())
        except ValueError as e:
            print("title", str(e).split(" (")[0])
        ray.shutdown()
    """)
    result = run([str(script)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "result 42" in result.stdout and "title ray::fails()" in result.stdout
