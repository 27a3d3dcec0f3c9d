"""Actor benchmark: actor call rates and latency, actor creation, and the three workloads of
"10x faster parallel Python without Python multiprocessing" (R. Nishihara, 2019), for
ember, Ray, multiprocessing.Pool and serial Python.

Run from the repository root::

    python bench/actors.py                                    # ember, Pool and serial
    python bench/actors.py --compare-ray RAY_VENV/bin/python --json actors.json
    python bench/actors.py --quick                            # smoke run, under a minute

Every system runs in a fresh process of its own, all started with ``num_cpus=2`` (Pool: 2
processes): ember and the standard library under this Python, Ray (with ``--compare-ray``)
as this same script under Ray's Python with ``--backend ray``. The parent drives them step
by step, in turns (who goes first alternates), so every system meets the same state of a
shared, noisy machine. Actors are created fresh for each measurement and killed after it.
A method call is "in flight" when it was submitted and its result not yet fetched.

Actor calls (ember and Ray; Ray gets fewer calls per sample, at most 5,000, and 20 actors in
part 4, because it is ~20x slower per call and ~0.3 s per actor):

    1 1:1 async   one actor, ``Counter.inc`` (``self.n += 1; return self.n``): n calls
                  submitted, then ``get`` of all n refs; calls/s (median of 5; Ray 3). Results
                  are checked to be consecutive and in order.
      1:1 sync    ``get(a.inc.remote())`` one at a time: p50 and p99 latency.
    2 async actor ``async def inc(self, s): ...; await asyncio.sleep(s)``, default
                  max_concurrency (1000 in both), n calls in flight, then get: calls/s for
                  s = 0 and s = 1 ms.
    3 1:n         one driver, n = 4 actors, calls spread round-robin, all in flight, one get.
      n:n         n = 4 caller actors, each holding a handle to a callee actor of its own; the
                  driver asks every caller to make k calls to its callee (submitted at once,
                  then one get) and waits for all callers: total calls / wall time. That is 8
                  actor processes on 2 cores: the runtime under contention.
    4 creation    create N actors (100; Ray 20, --ray-actors) and get one call from each
                  (``os.getpid()``, checked distinct): wall time until the last result, when
                  the first and the median result came, time spent inside the ``.remote()``
                  calls, and the CPU time all the system's processes used meanwhile.

Nishihara's three workloads, reimplemented from the post's description (sizes chosen so that
serial Python takes about 2 s here). Each system/variant runs each workload --repeat times
(3), in turns, starting with a different one each round; the tables show medians. ember and
Ray first run each variant once untimed (shipping code, starting workers, touching fresh
store memory; its time is shown as "warm-up"). Every run's result is checked against serial
Python's. Actor creation, model building and Pool creation (when it depends on the data) are
inside the timed region; ember's and Ray's ``init()`` and the plain Pool's creation are not.

    a array       4 rounds; each round a new image (float64 3000x3000, 72 MB, as in the post)
                  and 4 different 4x4 filters: each task correlates the whole image with its
                  filter (cache-blocked numpy, ~0.1 s) and returns the result downsampled 5x.
                  ember/Ray: ``put`` the image once per round, the 4 tasks take the ref (a
                  zero-copy read). Pool: ``starmap`` (the image pickled to each task), and
                  Pool + initializer (a new Pool(2) per image, the image handed to the
                  initializer: with the fork start method the workers inherit it without a
                  copy). Serial: a loop.
    b stream      160 text chunks of 10,000 Zipf-distributed words; every prefix of every word
                  is counted. ember/Ray: 2 actors keep running counts, chunk i goes to actor
                  i % 2 (fire and forget), then each returns its counts and the driver merges
                  them. Pool: ``imap_unordered`` returns one count dict per chunk, merged in
                  the driver as they arrive (a Pool worker cannot keep state for the driver).
                  Serial: one dict. All then pick the prefixes counted >= 1,000 times.
    c init        a bag-of-words text classifier whose construction is the expensive part
                  (~0.25 s: a 200,000-word vocabulary table and an embedding matrix), then 64
                  batches of 800 texts (~25 ms each). ember/Ray: 2 actors each build the model
                  once; batches go round-robin, and (second variant) through
                  ``util.ActorPool.map``. Pool + initializer builds it once per worker; plain
                  Pool builds it in every task (the post's baseline; timed once, it is slow).
                  Serial: built once.

BLAS and OpenMP are pinned to one thread (OMP_NUM_THREADS etc., set before numpy is
imported, inherited by every worker) so that "serial" means one core. A thread samples how
many cores processes outside the benchmark keep busy; the report states it. Times are
``time.perf_counter``; the cyclic GC is off in the timed loops of parts 1-4.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy: one BLAS thread in every process

import argparse  # noqa: E402
import asyncio  # noqa: E402
import collections  # noqa: E402
import contextlib  # noqa: E402
import gc  # noqa: E402
import hashlib  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import select  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import _common  # noqa: E402
from _common import (  # noqa: E402
    descendants,
    dig,
    fmt,
    git_describe,
    no_gc,
    percentile,
    proc_table,
    progress,
    serve,
    spawn_backend,
    table,
    times_better,
    wait_quiet,
)

#: Targets for ember (from the actors issue); docs/performance.md reports against them.
TARGETS = {
    "async_per_s": 50_000.0,  # 1:1 async actor calls/s, at least
    "sync_p50_us": 60.0,  # 1:1 sync round trip p50, at most
    "create_s": 1.0,  # 100 actors created + one call each, at most
}
SEED = 20190115  # the post's date; any fixed seed
POPULAR = 1000  # a prefix counted at least this often is "popular" (workload b)
STEP_TIMEOUT_S = 600.0  # a step taking longer is reported as a hang


# --- actor-call workloads: plain module-level classes, shared by ember and Ray ---------------


class Counter:
    """The smallest stateful actor."""

    def __init__(self):
        self.n = 0

    def inc(self):
        self.n += 1
        return self.n

    def pid(self):
        return os.getpid()


class AsyncCounter:
    """An async actor: its methods run on an asyncio loop, many at a time."""

    def __init__(self):
        self.n = 0

    async def inc(self, sleep_s):
        self.n += 1
        n = self.n
        await asyncio.sleep(sleep_s)
        return n


class Caller:
    """n:n: an actor that calls its own callee actor."""

    def __init__(self, backend: str, callee):
        self.get = importlib.import_module(backend).get
        self.callee = callee

    def run(self, k: int):
        refs = [self.callee.inc.remote() for _ in range(k)]
        return self.get(refs)[-1]


# --- Nishihara's workloads: plain module-level code, shared by every system ------------------

_GLOBAL: dict = {}  # per-process state of the Pool-with-initializer variants


def _set_global(key, value) -> None:
    _GLOBAL[key] = value


# a: numerical work on one large array


def convolve(image: np.ndarray, filt: np.ndarray, block: int = 32) -> np.ndarray:
    """'Valid' 2-D correlation of image with a small k x k filter, downsampled 5x.

    k*k multiply-adds per pixel, done 32 rows at a time so the working set stays in cache: the
    work is bound by the core, not by memory bandwidth, and so scales over cores (as the
    post's ``scipy.signal.convolve2d`` does)."""
    k = filt.shape[0]
    h, w = image.shape[0] - k + 1, image.shape[1] - k + 1
    out = np.empty((h, w))
    tmp = np.empty((block, w))
    for r0 in range(0, h, block):
        r1 = min(r0 + block, h)
        o, t = out[r0:r1], tmp[: r1 - r0]
        np.multiply(image[r0:r1, 0:w], filt[0, 0], out=o)
        for i in range(k):
            for j in range(k):
                if i or j:
                    np.multiply(image[r0 + i : r1 + i, j : j + w], filt[i, j], out=t)
                    o += t
    return np.ascontiguousarray(out[::5, ::5])


def convolve_global(filt: np.ndarray) -> np.ndarray:
    return convolve(_GLOBAL["image"], filt)


def array_check(results: list) -> str:
    return f"{len(results)} results, sum {sum(float(r.sum()) for r in results):.9g}"


# b: stateful stream processing


def count_prefixes(counts, text: str) -> None:
    for word in text.split():
        for i in range(1, len(word) + 1):
            counts[word[:i]] += 1


def chunk_counts(text: str) -> dict:
    counts: dict = collections.defaultdict(int)
    count_prefixes(counts, text)
    return dict(counts)


class PrefixCounter:
    """An actor that keeps prefix counts over the chunks of a stream it is sent."""

    def __init__(self):
        self.counts = collections.defaultdict(int)

    def add(self, text: str) -> None:
        count_prefixes(self.counts, text)

    def result(self) -> dict:
        return dict(self.counts)


def merge_counts(parts) -> collections.Counter:
    total: collections.Counter = collections.Counter()
    for part in parts:
        total.update(part)
    return total


def popular(total) -> list:
    return sorted(p for p, c in total.items() if c >= POPULAR)


def stream_check(total, pop: list) -> str:
    digest = hashlib.md5("\n".join(pop).encode()).hexdigest()[:12]  # a checksum, not security
    return f"{len(total)} prefixes, {sum(total.values())} counted, {len(pop)} popular ({digest})"


# c: expensive per-worker initialisation

_LETTERS = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz", dtype=np.uint8)


def make_words(n: int, seed: int) -> list:
    """n pseudo-random lowercase words of 3-10 letters (the same for a seed everywhere)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, 11, n).tolist()
    letters = _LETTERS[rng.integers(0, 26, sum(lengths))].tobytes().decode()
    out, pos = [], 0
    for n_letters in lengths:
        out.append(letters[pos : pos + n_letters])
        pos += n_letters
    return out


class Model:
    """A bag-of-words text classifier. Building it is the expensive part (a vocabulary table
    and an embedding matrix, as loading a model from disk would be); predicting one batch is
    cheap."""

    def __init__(self, seed: int, vocab: int = 200_000, dim: int = 64, classes: int = 16):
        rng = np.random.default_rng(seed)
        self.index = {w: i + 1 for i, w in enumerate(make_words(vocab, seed))}
        emb = rng.standard_normal((vocab + 1, dim), dtype=np.float32)
        emb[0] = 0.0  # unknown words
        emb /= np.linalg.norm(emb, axis=1, keepdims=True) + 1e-6
        self.emb = emb
        self.w = rng.standard_normal((dim, classes)).astype(np.float32)

    def predict(self, texts: list) -> list:
        index, emb = self.index, self.emb
        rows = [emb[[index.get(w, 0) for w in t.split()]].mean(axis=0) for t in texts]
        return (np.stack(rows) @ self.w).argmax(axis=1).tolist()


class Classifier:
    """An actor holding one Model."""

    def __init__(self, seed: int):
        self.model = Model(seed)

    def predict(self, texts: list) -> list:
        return self.model.predict(texts)


def predict_global(texts: list) -> list:
    return _GLOBAL["model"].predict(texts)


def predict_fresh(texts: list) -> list:
    return Model(SEED).predict(texts)


def init_model(seed: int) -> None:
    _GLOBAL["model"] = Model(seed)


def labels_check(results: list) -> str:
    flat = [x for batch in results for x in batch]
    digest = hashlib.md5(bytes(flat)).hexdigest()[:12]  # a checksum, not security
    return f"{len(flat)} labels, {sum(flat)} label sum ({digest})"


# --- the inputs: generated in each system's process, identically, outside the timing --------


class Inputs:
    def __init__(self, args):
        rng = np.random.default_rng(SEED)
        # a: new image each round, F filters per round
        self.images = [rng.standard_normal((args.image, args.image)) for _ in range(args.rounds)]
        self.filters = [rng.standard_normal((4, 4)) for _ in range(args.filters)]
        # b: chunks of Zipf-distributed words from a 30,000-word vocabulary
        vocab = np.array(make_words(30_000, SEED + 1), dtype=object)
        p = 1.0 / np.arange(1, len(vocab) + 1)
        p /= p.sum()
        self.chunks = [
            " ".join(vocab[rng.choice(len(vocab), size=args.words, p=p)].tolist())
            for _ in range(args.chunks)
        ]
        # c: texts of 50 words from the model's vocabulary (a few unknown words)
        words = np.array(make_words(200_000, SEED)[:50_000] + make_words(500, 7), dtype=object)
        texts = [
            " ".join(row)
            for row in words[rng.integers(0, len(words), (args.batches * args.texts, 50))].tolist()
        ]
        self.batches = [texts[i : i + args.texts] for i in range(0, len(texts), args.texts)]


# --- helpers ---------------------------------------------------------------------------------


def tree_cpu_s(root: int) -> float:
    """CPU seconds used so far by root and its descendants."""
    procs = proc_table()
    tree = descendants(procs, root) | {root}
    return sum(procs[p][1] for p in tree if p in procs) / os.sysconf("SC_CLK_TCK")


def wait_settled(timeout_s: float = 20.0, window_s: float = 0.25, max_busy: float = 0.05):
    """Waits until this process's children (Ray's GCS, raylet and workers; exiting actors)
    use under max_busy of a core for two windows in a row; returns the seconds waited."""
    start = time.perf_counter()
    calm = 0
    try:
        me = os.getpid()
        before = tree_cpu_s(me) - time.process_time()
        while calm < 2 and time.perf_counter() - start < timeout_s:
            time.sleep(window_s)
            now = tree_cpu_s(me) - time.process_time()
            calm = calm + 1 if now - before < max_busy * window_s else 0
            before = now
    except OSError:  # no /proc: settle for a fixed pause
        time.sleep(1.0)
    return time.perf_counter() - start


class LoadMonitor(_common.LoadMonitor):
    """_common.LoadMonitor, whose summary adds the 90th percentile."""

    def summary(self) -> dict:
        s = self.samples
        return {
            **super().summary(),
            "other_cores_p90": round(percentile(s, 90), 2) if s else None,
        }


# --- one system's side: runs in its own process, one step per call --------------------------


class Runner:
    """The measurements of one system (ember, ray or stdlib = Pool and serial), in this
    process. The parent calls its steps one at a time (RemoteRunner); each returns a JSON-able
    dict."""

    def __init__(self, name: str, args):
        self.name = name
        self.args = args
        self.mod = None
        self.pool = None

    # -- life cycle --

    def info(self) -> dict:
        out = {"python": sys.executable, "numpy": np.__version__}
        if self.name in ("ember", "ray"):
            out["version"] = importlib.import_module(self.name).__version__
        return out

    def start(self) -> dict:
        t = time.perf_counter()
        self.inputs = Inputs(self.args)
        gen_s = time.perf_counter() - t
        t = time.perf_counter()
        if self.name == "ember":
            import ember as mod  # noqa: PLC0415 (not importable under Ray's Python)

            mod.init(num_cpus=2)
        elif self.name == "ray":
            import ray as mod  # noqa: PLC0415 (not importable under ember's Python)

            mod.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
        else:
            import multiprocessing  # noqa: PLC0415

            mod = None
            self.pool = multiprocessing.Pool(2)
            self.pool.map(abs, range(8))  # both workers up
        init_s = time.perf_counter() - t
        self.mod = mod
        if mod is not None:
            self.Counter = mod.remote(Counter)
            self.AsyncCounter = mod.remote(AsyncCounter)
            self.Caller = mod.remote(Caller)
            self.PrefixCounter = mod.remote(PrefixCounter)
            self.Classifier = mod.remote(Classifier)
            self.convolve = mod.remote(convolve)
            self.ActorPool = importlib.import_module(f"{self.name}.util").ActorPool
        settle_s = wait_settled()
        progress(
            f"{self.name}: inputs {gen_s:.1f} s, init {init_s:.2f} s, settled in {settle_s:.1f} s"
        )
        return {"init_s": init_s, "inputs_s": gen_s, "settle_s": settle_s}

    def stop(self) -> dict:
        if self.mod is not None:
            self.mod.shutdown()
        if self.pool is not None:
            self.pool.close()
            self.pool.join()
        return {}

    def _bounded(self, ember_n: int, ray_n: int) -> int:
        return min(ember_n, ray_n) if self.name == "ray" else ember_n

    def _kill(self, handles) -> None:
        for h in handles:
            self.mod.kill(h)
        wait_settled(timeout_s=10.0)

    # -- 1-3: actor calls --

    def _rate(self, n: int, submit, check, repeat: int) -> dict:
        """submit() sends n calls and returns their refs; calls/s from the median time."""
        get, totals, submits = self.mod.get, [], []
        for _ in range(repeat):
            with no_gc():
                t = time.perf_counter()
                refs = submit()
                t_sub = time.perf_counter()
                values = get(refs)
                t_end = time.perf_counter()
            check(values)
            del refs, values
            totals.append(t_end - t)
            submits.append(t_sub - t)
        return {
            "n": n,
            "per_s": n / statistics.median(totals),
            "submit_per_s": n / statistics.median(submits),
            "samples_s": [round(x, 4) for x in totals],
        }

    def _repeat(self) -> int:
        return min(self.args.repeat_calls, 3) if self.name == "ray" else self.args.repeat_calls

    def calls_1to1(self) -> dict:
        get, args = self.mod.get, self.args
        a = self.Counter.remote()
        get([a.inc.remote() for _ in range(200)])  # up and warm
        state = {"next": 201}
        n = self._bounded(args.n_async, args.ray_async)

        def submit():
            return [a.inc.remote() for _ in range(n)]

        def check(values):
            first = state["next"]
            assert values == list(range(first, first + n)), "1:1 calls out of order or lost"
            state["next"] = first + n

        out = {"async": self._rate(n, submit, check, self._repeat())}
        calls = self._bounded(args.n_sync, args.ray_sync)
        ts = []
        with no_gc():
            for _ in range(calls):
                t = time.perf_counter()
                get(a.inc.remote())
                ts.append(time.perf_counter() - t)
        out["sync"] = {
            "calls": calls,
            "p50_us": percentile(ts, 50) * 1e6,
            "p99_us": percentile(ts, 99) * 1e6,
            "mean_us": statistics.fmean(ts) * 1e6,
        }
        self._kill([a])
        progress(
            f"{self.name} 1:1: async {out['async']['per_s']:,.0f} calls/s (n={n}), sync p50 "
            f"{out['sync']['p50_us']:.0f} us, p99 {out['sync']['p99_us']:.0f} us"
        )
        return out

    def async_actor(self) -> dict:
        get, args = self.mod.get, self.args
        a = self.AsyncCounter.remote()
        get([a.inc.remote(0.0) for _ in range(200)])
        out = {}
        done = {"n": 200}
        for label, sleep_s in (("sleep0", 0.0), ("sleep1ms", 0.001)):
            n = self._bounded(args.n_async, args.ray_async)

            def submit(n=n, sleep_s=sleep_s):
                return [a.inc.remote(sleep_s) for _ in range(n)]

            def check(values, n=n):
                first = done["n"] + 1
                assert sorted(values) == list(range(first, first + n)), "async calls lost"
                done["n"] += n

            out[label] = self._rate(n, submit, check, self._repeat())
        self._kill([a])
        progress(
            f"{self.name} async actor: sleep(0) {out['sleep0']['per_s']:,.0f} calls/s, "
            f"sleep(1 ms) {out['sleep1ms']['per_s']:,.0f} calls/s"
        )
        return out

    def fan(self) -> dict:
        get, args, k = self.mod.get, self.args, self.args.fan
        actors = [self.Counter.remote() for _ in range(k)]
        get([a.inc.remote() for a in actors for _ in range(50)])
        base = {"n": 50}
        n = self._bounded(args.n_async, args.ray_async)

        def submit():
            return [actors[i % k].inc.remote() for i in range(n)]

        def check(values):
            first = base["n"] + 1
            for j in range(k):
                assert values[j::k] == list(range(first, first + len(values[j::k]))), "1:n"
            base["n"] += n // k

        out = {"1n": self._rate(n, submit, check, self._repeat())}

        callees = [self.Counter.remote() for _ in range(k)]
        callers = [self.Caller.remote(self.name, c) for c in callees]
        get([c.run.remote(10) for c in callers])
        per = self._bounded(args.n_async // k, args.ray_async // k)
        last = {"n": 10}

        def submit_nn():
            return [c.run.remote(per) for c in callers]

        def check_nn(values):
            last["n"] += per
            assert values == [last["n"]] * k, "n:n calls lost"

        out["nn"] = self._rate(k * per, submit_nn, check_nn, self._repeat())
        self._kill(actors + callers + callees)
        progress(
            f"{self.name} 1:{k} {out['1n']['per_s']:,.0f} calls/s, {k}:{k} "
            f"{out['nn']['per_s']:,.0f} calls/s"
        )
        return out

    def create(self) -> dict:
        n = self._bounded(self.args.actors, self.args.ray_actors)
        repeat = 1 if self.name == "ray" else self.args.repeat_create
        get, wait = self.mod.get, self.mod.wait
        runs = []
        for _ in range(repeat):
            cpu0 = tree_cpu_s(os.getpid())
            with no_gc():
                t = time.perf_counter()
                handles = [self.Counter.remote() for _ in range(n)]
                t_sub = time.perf_counter()
                pending = [h.pid.remote() for h in handles]
                arrivals = []
                while pending:
                    _, pending = wait(pending, num_returns=1)
                    arrivals.append(time.perf_counter() - t)
            cpu_s = tree_cpu_s(os.getpid()) - cpu0
            pids = get([h.pid.remote() for h in handles])
            assert len(set(pids)) == n, "actors share a process"
            runs.append(
                {
                    "s": arrivals[-1],
                    "submit_s": t_sub - t,
                    "first_s": arrivals[0],
                    "median_s": statistics.median(arrivals),
                    "cpu_s": cpu_s,
                }
            )
            self._kill(handles)
            del handles
        best = sorted(runs, key=lambda r: r["s"])[len(runs) // 2]  # the median run
        out = {
            "n": n,
            **best,
            "per_actor_ms": best["s"] / n * 1e3,
            "cpu_per_actor_ms": best["cpu_s"] / n * 1e3,
            "runs": runs,
        }
        progress(
            f"{self.name} create {n} actors + 1 call each: {out['s']:.2f} s "
            f"({out['per_actor_ms']:.1f} ms/actor, {out['cpu_per_actor_ms']:.1f} ms CPU/actor; "
            f"first result {out['first_s'] * 1e3:.0f} ms; "
            f"runs {', '.join(format(r['s'], '.2f') for r in runs)})"
        )
        return out

    # -- 5: Nishihara's workloads; each call runs one variant once --

    def blog(self, workload: str, variant: str) -> dict:
        fn = getattr(self, f"_{workload}_{variant}")
        gc.collect()
        t = time.perf_counter()
        check = fn()
        return {"s": time.perf_counter() - t, "check": check}

    # a: array
    def _array_tasks(self):
        out = []
        for image in self.inputs.images:
            ref = self.mod.put(image)
            out += self.mod.get([self.convolve.remote(ref, f) for f in self.inputs.filters])
            del ref
        return array_check(out)

    def _array_pool(self):
        out = []
        for image in self.inputs.images:
            out += self.pool.starmap(convolve, [(image, f) for f in self.inputs.filters])
        return array_check(out)

    def _array_pool_init(self):
        import multiprocessing  # noqa: PLC0415

        out = []
        for image in self.inputs.images:
            with multiprocessing.Pool(2, _set_global, ("image", image)) as pool:
                out += pool.map(convolve_global, self.inputs.filters)
        return array_check(out)

    def _array_serial(self):
        out = []
        for image in self.inputs.images:
            out += [convolve(image, f) for f in self.inputs.filters]
        return array_check(out)

    # b: stream
    def _stream_actors(self):
        actors = [self.PrefixCounter.remote() for _ in range(2)]
        for i, chunk in enumerate(self.inputs.chunks):
            actors[i % 2].add.remote(chunk)
        total = merge_counts(self.mod.get([a.result.remote() for a in actors]))
        check = stream_check(total, popular(total))
        del actors  # out of scope: both runtimes end the actors
        return check

    def _stream_pool(self):
        total = merge_counts(self.pool.imap_unordered(chunk_counts, self.inputs.chunks))
        return stream_check(total, popular(total))

    def _stream_serial(self):
        counts = collections.defaultdict(int)
        for chunk in self.inputs.chunks:
            count_prefixes(counts, chunk)
        total = merge_counts([counts])
        return stream_check(total, popular(total))

    # c: init
    def _init_actors(self):
        actors = [self.Classifier.remote(SEED) for _ in range(2)]
        refs = [actors[i % 2].predict.remote(b) for i, b in enumerate(self.inputs.batches)]
        check = labels_check(self.mod.get(refs))
        del actors
        return check

    def _init_actorpool(self):
        actors = [self.Classifier.remote(SEED) for _ in range(2)]
        pool = self.ActorPool(actors)
        results = list(pool.map(lambda a, b: a.predict.remote(b), self.inputs.batches))
        del pool, actors
        return labels_check(results)

    def _init_pool(self):
        return labels_check(self.pool.map(predict_fresh, self.inputs.batches, chunksize=1))

    def _init_pool_init(self):
        import multiprocessing  # noqa: PLC0415

        with multiprocessing.Pool(2, init_model, (SEED,)) as pool:
            return labels_check(pool.map(predict_global, self.inputs.batches, chunksize=1))

    def _init_serial(self):
        model = Model(SEED)
        return labels_check([model.predict(b) for b in self.inputs.batches])


class RemoteRunner:
    """A Runner in a child process: this script run by `python` with --backend NAME.

    Calls go as JSON lines on the child's stdin; results come back on a pipe of their own, so
    whatever the runtime prints cannot garble them. The child's stdout (progress) is shared
    with ours; its stderr is kept and shown only if the child fails. A step that takes longer
    than STEP_TIMEOUT_S is reported as a hang, with the child's Python stacks (py-spy) when
    py-spy is installed.
    """

    def __init__(self, python: str, name: str, args):
        self.name = name
        self.cmd, self.proc, self.replies, self.stderr = spawn_backend(
            python, __file__, name, forwarded_args(args)
        )

    def call(self, method: str, *call_args):
        try:
            self.proc.stdin.write(json.dumps({"method": method, "args": call_args}) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass
        ready, _, _ = select.select([self.replies], [], [], STEP_TIMEOUT_S)
        if not ready:
            self._hang(method, call_args)
        line = self.replies.readline()
        if not line:
            self.proc.wait()
            self.stderr.seek(0)
            sys.stderr.write(self.stderr.read()[-20000:])
            raise SystemExit(
                f"the {self.name} run failed (exit {self.proc.returncode}): {self.cmd}"
            )
        return json.loads(line)

    def _hang(self, method, call_args) -> None:
        print(
            f"\n{self.name}: step {method}{tuple(call_args)} did not finish in "
            f"{STEP_TIMEOUT_S:.0f} s",
            file=sys.stderr,
        )
        spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
        if os.path.exists(spy):
            procs = proc_table()
            for pid in sorted(descendants(procs, self.proc.pid) | {self.proc.pid}):
                subprocess.run([spy, "dump", "--pid", str(pid)], check=False, timeout=60)
        self.proc.kill()
        raise SystemExit(f"the {self.name} run hung in {method}")

    def __getattr__(self, method: str):
        return lambda *call_args: self.call(method, *call_args)

    def close(self) -> None:
        with contextlib.suppress(BrokenPipeError):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.replies.close()


SIZE_ARGS = (
    "n_async",
    "ray_async",
    "n_sync",
    "ray_sync",
    "fan",
    "actors",
    "ray_actors",
    "repeat_calls",
    "repeat_create",
    "image",
    "rounds",
    "filters",
    "chunks",
    "words",
    "batches",
    "texts",
)


def forwarded_args(args) -> list:
    out = []
    for name in SIZE_ARGS:
        out += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    return out


# --- the parent: drives the systems in turns ------------------------------------------------

#: Nishihara's workloads: (workload, system, variant, label); ember's main variant first.
VARIANTS = {
    "array": [
        ("ember", "tasks", "ember: put + tasks"),
        ("ray", "tasks", "Ray: put + tasks"),
        ("stdlib", "pool", "Pool.starmap (image pickled)"),
        ("stdlib", "pool_init", "Pool + initializer, per image"),
        ("stdlib", "serial", "serial Python"),
    ],
    "stream": [
        ("ember", "actors", "ember: 2 actors"),
        ("ray", "actors", "Ray: 2 actors"),
        ("stdlib", "pool", "Pool.imap_unordered + merge"),
        ("stdlib", "serial", "serial Python"),
    ],
    "init": [
        ("ember", "actors", "ember: 2 actors"),
        ("ember", "actorpool", "ember: 2 actors, ActorPool"),
        ("ray", "actors", "Ray: 2 actors"),
        ("ray", "actorpool", "Ray: 2 actors, ActorPool"),
        ("stdlib", "pool_init", "Pool + initializer"),
        ("stdlib", "pool", "Pool, model built per task"),
        ("stdlib", "serial", "serial Python"),
    ],
}
WORKLOAD_TITLES = {
    "array": "a. array",
    "stream": "b. stream",
    "init": "c. init",
}
ONCE = {("init", "stdlib", "pool")}  # slow baselines timed once


def measure_all(runners: dict, args) -> dict:
    results: dict = {name: r.info() for name, r in runners.items()}
    for name, r in runners.items():
        results[name]["start"] = r.start()
    order = [n for n in ("ember", "ray") if n in runners]
    steps = ("calls_1to1", "async_actor", "fan", "create")
    for i, step in enumerate(steps):
        wait_quiet(args.wait_quiet)
        for name in order if i % 2 == 0 else order[::-1]:
            results[name][step] = runners[name].call(step)

    blog: dict = {}
    for workload, all_variants in VARIANTS.items():
        wait_quiet(args.wait_quiet)
        variants = [v for v in all_variants if v[0] in runners]
        samples = {(s, v): [] for s, v, _ in variants}
        checks: dict = {}
        first = {}
        for system, variant, _ in variants:  # warm-up: ship code, start workers, touch memory
            if system in ("ember", "ray"):
                res = runners[system].blog(workload, variant)
                first[(system, variant)] = res["s"]
                checks.setdefault(res["check"], []).append(f"{system}/{variant}")
        for rep in range(args.repeat):
            shift = rep % len(variants)
            for system, variant, _ in variants[shift:] + variants[:shift]:
                if (workload, system, variant) in ONCE and rep > 0:
                    continue
                res = runners[system].blog(workload, variant)
                samples[(system, variant)].append(res["s"])
                checks.setdefault(res["check"], []).append(f"{system}/{variant}")
        rows = []
        for system, variant, label in variants:
            ts = samples[(system, variant)]
            rows.append(
                {
                    "system": system,
                    "variant": variant,
                    "label": label,
                    "s": statistics.median(ts),
                    "samples_s": [round(t, 3) for t in ts],
                    "first_s": first.get((system, variant)),
                }
            )
        blog[workload] = {"rows": rows, "checks": {k: sorted(v) for k, v in checks.items()}}
        progress(
            f"{WORKLOAD_TITLES[workload]}: "
            + ", ".join(f"{r['label']} {r['s']:.2f} s" for r in rows)
        )
        if len(checks) != 1:
            progress(f"RESULTS DIFFER in workload {workload} (see the report)")
    for r in runners.values():
        r.stop()
    results["blog"] = blog
    return results


def run(args) -> dict:
    runners = {"ember": RemoteRunner(sys.executable, "ember", args)}
    if args.compare_ray:
        print(f"ray: measured by this script under {args.compare_ray}", flush=True)
        runners["ray"] = RemoteRunner(args.compare_ray, "ray", args)
    runners["stdlib"] = RemoteRunner(sys.executable, "stdlib", args)
    try:
        with LoadMonitor() as mon:
            results = measure_all(runners, args)
    finally:
        for r in runners.values():
            r.close()
    results["load"] = mon.summary()
    return results


# --- report ----------------------------------------------------------------------------------


def blog_row(results: dict, workload: str, system: str, variant: str):
    for row in results["blog"][workload]["rows"]:
        if row["system"] == system and row["variant"] == variant:
            return row["s"]
    return None


def wrong_runs(results: dict, workload: str) -> int:
    """How many of ember's runs of a workload gave a result that serial Python did not."""
    checks = results["blog"][workload]["checks"]
    good = next((c for c, who in checks.items() if "stdlib/serial" in who), None)
    return sum(
        n
        for c, who in checks.items()
        if c != good
        for n in [sum(1 for w in who if w.startswith("ember/"))]
    )


def main_variant(workload: str, system: str) -> str:
    """The variant of a system that the targets compare (its first in VARIANTS)."""
    return next(v for s, v, _ in VARIANTS[workload] if s == system)


def best_pool(results: dict, workload: str) -> tuple:
    rows = [
        r
        for r in results["blog"][workload]["rows"]
        if r["system"] == "stdlib" and r["variant"] != "serial"
    ]
    best = min(rows, key=lambda r: r["s"])
    return best["s"], best["label"]


def targets(results: dict) -> list:
    e = results["ember"]
    create = e["create"]
    rows = [
        (
            "1:1 async actor calls/s",
            f">= {TARGETS['async_per_s']:,.0f}",
            f"{e['calls_1to1']['async']['per_s']:,.0f}",
            e["calls_1to1"]["async"]["per_s"] >= TARGETS["async_per_s"],
        ),
        (
            "1:1 sync round trip p50",
            f"<= {TARGETS['sync_p50_us']:.0f} us",
            f"{e['calls_1to1']['sync']['p50_us']:.0f} us",
            e["calls_1to1"]["sync"]["p50_us"] <= TARGETS["sync_p50_us"],
        ),
        (
            f"create {create['n']} actors + 1 call",
            f"<= {TARGETS['create_s']:.1f} s" + ("" if create["n"] == 100 else " for 100"),
            f"{create['s']:.2f} s",
            create["s"] <= TARGETS["create_s"] if create["n"] == 100 else None,
        ),
    ]
    for workload in VARIANTS:
        mine = blog_row(results, workload, "ember", main_variant(workload, "ember"))
        ray = blog_row(results, workload, "ray", main_variant(workload, "ray"))
        pool, _ = best_pool(results, workload)
        if ray is not None:
            rows.append(
                (
                    f"{WORKLOAD_TITLES[workload]}: faster than Ray",
                    "ember < Ray",
                    f"{mine:.2f} vs {ray:.2f} s",
                    mine < ray,
                )
            )
        rows.append(
            (
                f"{WORKLOAD_TITLES[workload]}: faster than best Pool",
                "ember < Pool",
                f"{mine:.2f} vs {pool:.2f} s",
                mine < pool,
            )
        )
        wrong = wrong_runs(results, workload)
        rows.append(
            (
                f"{WORKLOAD_TITLES[workload]}: results",
                "all equal",
                f"{wrong} ember run(s) wrong" if wrong else "equal",
                not wrong,
            )
        )
    return rows


def print_report(results: dict, args) -> None:
    e, r = results["ember"], results.get("ray") or {}
    has_ray = bool(r)
    k = args.fan

    def calls_row(label, path, key, higher, spec=",.0f"):
        ev, rv = dig(e, *path, key), dig(r, *path, key)
        n = dig(e, *path, "n") or dig(e, *path, "calls")
        rn = dig(r, *path, "n") or dig(r, *path, "calls")
        return [
            label,
            fmt(ev, spec),
            fmt(rv, spec),
            times_better(ev, rv, higher),
            f"{n:,}" + (f" / {rn:,}" if rn else ""),
        ]

    rows = [
        calls_row("1:1 async, calls/s", ("calls_1to1", "async"), "per_s", True),
        calls_row("1:1 sync p50, us", ("calls_1to1", "sync"), "p50_us", False, ".0f"),
        calls_row("1:1 sync p99, us", ("calls_1to1", "sync"), "p99_us", False, ".0f"),
        calls_row("async actor, sleep(0), calls/s", ("async_actor", "sleep0"), "per_s", True),
        calls_row("async actor, sleep(1ms), calls/s", ("async_actor", "sleep1ms"), "per_s", True),
        calls_row(f"1:{k} round-robin, calls/s", ("fan", "1n"), "per_s", True),
        calls_row(f"{k}:{k} actor pairs, calls/s", ("fan", "nn"), "per_s", True),
    ]
    table(
        "1-3. actor calls (medians; 'ember x' > 1: ember better; n = calls per sample, "
        "ember / Ray)",
        ["measure", "ember", "Ray", "ember x", "n"],
        rows,
        [34, 9, 9, 7, 13],
    )

    ec, rc = e["create"], r.get("create")
    rows = []
    for name, c in (("ember", ec), ("Ray", rc)):
        if c:
            rows.append(
                [
                    f"{name}: {c['n']} actors",
                    f"{c['s']:.2f}",
                    f"{c['per_actor_ms']:.1f}",
                    f"{c['cpu_per_actor_ms']:.1f}",
                    f"{c['first_s'] * 1e3:.0f}",
                    f"{c['median_s'] * 1e3:.0f}",
                    f"{c['submit_s'] * 1e3:.1f}",
                    times_better(ec["per_actor_ms"], c["per_actor_ms"], False),
                ]
            )
    table(
        "4. create N actors, then one call each: wall time to the last result (median run); "
        "per actor: wall and CPU ms (all the system's processes); when the first and the median "
        "result came; time spent in the .remote() calls",
        [
            "system",
            "total s",
            "ms/actor",
            "CPU ms",
            "first ms",
            "median ms",
            "submit ms",
            "ember x",
        ],
        rows,
        [18, 7, 8, 6, 8, 9, 9, 7],
    )

    for workload in VARIANTS:
        bw = results["blog"][workload]
        mine = blog_row(results, workload, "ember", main_variant(workload, "ember"))
        rows = []
        for row in bw["rows"]:
            n = len(row["samples_s"])
            rows.append(
                [
                    row["label"],
                    f"{row['s']:.2f}",
                    times_better(mine, row["s"], False),
                    ", ".join(f"{t:.2f}" for t in row["samples_s"])
                    + ("" if n > 1 or args.repeat == 1 else " (once)"),
                    fmt(row["first_s"], ".2f"),
                ]
            )
        sizes = {
            "array": f"{args.rounds} images {args.image}x{args.image} float64 x {args.filters} "
            f"filters 4x4 = {args.rounds * args.filters} tasks",
            "stream": f"{args.chunks} chunks x {args.words:,} words, 2 actors / 2 processes",
            "init": f"model ~0.25 s to build; {args.batches} batches x {args.texts} texts",
        }[workload]
        table(
            f"5{WORKLOAD_TITLES[workload]} ({sizes}): seconds, "
            f"median of {args.repeat}; 'ember x' = this row's time / ember's; 'warm-up' = the "
            "untimed first run (ember and Ray only)",
            ["system", "s", "ember x", "samples", "warm-up"],
            rows,
            [32, 6, 7, 20, 7],
        )
        if len(bw["checks"]) != 1:
            print("!! RESULTS DIFFER between systems (result: runs that gave it):")
            for check, who in bw["checks"].items():
                print(f"   {check}: {dict(collections.Counter(who))}")
        else:
            print(f"results equal in all systems: {next(iter(bw['checks']))}")

    rows = [
        [name, goal, got, "-" if ok is None else ("met" if ok else "MISSED")]
        for name, goal, got, ok in targets(results)
    ]
    table("ember against the targets", ["measure", "target", "ember", ""], rows, [34, 16, 18, 6])
    load = results["load"]
    print()
    print(
        f"Ray {r.get('version', '-') if has_ray else 'not run (--compare-ray PYTHON)'}; "
        f"ember {e.get('version')}; other processes kept {load['other_cores_mean']} cores busy "
        f"on average (p90 {load['other_cores_p90']}, max {load['other_cores_max']}; 2 = all)."
    )
    if (load["other_cores_mean"] or 0) > 0.25:
        print("WARNING: the machine was busy with other work; these numbers are not clean.")


# --- main ------------------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="a short smoke run")
    p.add_argument(
        "--compare-ray",
        metavar="PYTHON",
        help="also measure Ray, running this script under that interpreter",
    )
    p.add_argument("--json", metavar="OUT", help="write all results as JSON to OUT")
    p.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="runs of each of Nishihara's workloads per system (default 3; quick 1)",
    )
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="S",
        help="before each part, wait up to S s for other processes to go quiet",
    )
    p.add_argument(
        "--ray-actors",
        type=int,
        default=None,
        help="actors Ray creates in part 4 (default 20, quick 5: ~0.4 s each)",
    )
    # sizes (forwarded to the systems' processes; defaults depend on --quick)
    for name in SIZE_ARGS:
        if name != "ray_actors":
            p.add_argument(
                f"--{name.replace('_', '-')}", type=int, default=None, help=argparse.SUPPRESS
            )
    # internal: one system's side of the run
    p.add_argument("--backend", choices=("ember", "ray", "stdlib"), help=argparse.SUPPRESS)
    p.add_argument("--result-fd", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if (args.backend is None) != (args.result_fd is None):
        p.error("--backend and --result-fd are internal to this script")
    q = args.quick
    defaults = {
        "repeat": 1 if q else 3,
        "n_async": 2000 if q else 10_000,
        "ray_async": 1000 if q else 5000,
        "n_sync": 300 if q else 3000,
        "ray_sync": 200 if q else 1000,
        "fan": 4,
        "actors": 100,
        "ray_actors": 5 if q else 20,
        "repeat_calls": 2 if q else 5,
        "repeat_create": 1 if q else 3,
        "image": 1000 if q else 3000,
        "rounds": 2 if q else 4,
        "filters": 4,
        "chunks": 40 if q else 160,
        "words": 10_000,
        "batches": 16 if q else 64,
        "texts": 800,
    }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def machine() -> str:
    cpu = platform.processor()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} CPUs, {mem:.1f} GiB, Linux {platform.release()}"


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.backend:  # one system's side, driven by the parent
        serve(Runner(args.backend, args), args.result_fd)
        return 0
    started = time.perf_counter()
    argv_text = argv if argv is not None else sys.argv[1:]
    meta = {
        "benchmark": "actors",
        "command": " ".join([os.path.basename(sys.executable), sys.argv[0], *argv_text]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": machine(),
        "python": sys.version.split()[0],
        "ember_checkout": git_describe(),
        "args": {k: v for k, v in vars(args).items() if k not in ("backend", "result_fd")},
    }
    print(f"{meta['machine']}; ember checkout {meta['ember_checkout']}", flush=True)
    results = run(args)
    results["meta"] = meta
    meta["seconds"] = round(time.perf_counter() - started, 1)
    results["targets"] = [
        {"measure": a, "target": b, "ember": c, "met": d} for a, b, c, d in targets(results)
    ]
    print_report(results, args)
    print(f"\n(whole run: {meta['seconds']:.0f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
