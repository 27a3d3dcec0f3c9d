"""Spilling: a store that is full of unpinned objects writes the least recently used to
files in the session directory and reads them back on access."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import ember
from ember.exceptions import ObjectLostError, ObjectStoreFullError, OutOfDiskError
from ember.util.state import list_objects

STORE = 64 << 20
CHUNK = (4 << 20) // 8  # 4 MiB of float64


def spilled() -> set[str]:
    """The ids of the objects now in spill files."""
    return {o["object_id"] for o in list_objects(limit=1 << 20) if o["state"] == "SPILLED"}


def settle_spilling(store) -> None:
    """Waits until the background spiller has stopped writing (no new spill for 0.3 s)."""
    last = -1
    while store.stats()["spills_total"] != last:
        last = store.stats()["spills_total"]
        time.sleep(0.3)


@pytest.fixture
def small_node():
    # Spilling only when a put does not fit: what is spilled does not depend on when the
    # background spiller gets a core (it may not, for seconds, on a busy machine).
    ember.init(num_cpus=1, object_store_memory=STORE,
               _system_config={"object_spilling_threshold": 1.0})
    yield ember._node.current()
    ember.shutdown()


def test_the_background_spiller_keeps_the_store_under_its_threshold():
    ember.init(num_cpus=1, object_store_memory=STORE,
               _system_config={"object_spilling_threshold": 0.5})
    try:
        store = ember._node.current().store
        refs = [ember.put(np.full(CHUNK, float(i))) for i in range(12)]  # 48 of 64 MiB: fits
        deadline = time.monotonic() + 10
        while store.stats()["used_bytes"] > STORE // 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert store.stats()["used_bytes"] <= STORE // 2
        assert refs[0].hex() in spilled()  # least recently used first
        assert [float(ember.get(r)[0]) for r in refs] == [float(i) for i in range(12)]
    finally:
        ember.shutdown()


@pytest.mark.parametrize("bad", [0, 1.5, "0.8"])
def test_a_bad_spilling_threshold_is_refused(bad):
    with pytest.raises(ValueError, match="object_spilling_threshold"):
        ember.init(num_cpus=1, _system_config={"object_spilling_threshold": bad})
    assert not ember.is_initialized()


def test_twice_the_store_fits_through_spilling(small_node):
    store = small_node.store
    refs = [ember.put(np.full(CHUNK, i, dtype=np.float64)) for i in range(32)]  # 128 MiB
    assert store.stats()["spilled_objects"] > 0
    assert os.listdir(small_node.spill_dir)
    assert refs[0].hex() in spilled()  # the oldest went first
    for i, ref in enumerate(refs):  # every value comes back right (restoring spills others)
        value = ember.get(ref)
        assert value[0] == i and value[-1] == i
    assert store.stats()["restores_total"] > 0
    store.check()
    del refs, ref, value
    # (an object the background spiller is writing out is freed when that write ends)
    # (the driver's spiller thread punches freed objects out of their files, within 0.1 s)
    deadline = time.monotonic() + 5
    while (store.stats()["num_objects"] or os.listdir(small_node.spill_dir)) and \
            time.monotonic() < deadline:
        time.sleep(0.01)
    assert store.stats()["num_objects"] == 0
    assert os.listdir(small_node.spill_dir) == []  # freed objects take their files along


def test_the_least_recently_used_go_first_and_pinned_objects_stay(small_node):
    store = small_node.store
    first = ember.put(np.full(CHUNK, 1.0))
    held = ember.get(first)  # pinned by a view: never spilled
    refs = [ember.put(np.full(CHUNK, float(i))) for i in range(24)]
    names = spilled()
    assert first.hex() not in names
    assert refs[0].hex() in names  # the oldest unpinned one went first
    assert refs[-1].hex() not in names
    assert held[0] == 1.0 and held[-1] == 1.0  # the view's memory was never reused


def test_a_restored_object_is_a_zero_copy_view_again(small_node):
    refs = [ember.put(np.full(CHUNK, float(i))) for i in range(24)]
    assert refs[0].hex() in spilled()
    a = ember.get(refs[0])
    b = ember.get(refs[0])
    lo, hi = small_node.store.segment_range
    assert lo <= a.__array_interface__["data"][0] < hi
    assert np.shares_memory(a, b)
    assert refs[0].hex() not in spilled()


def test_tasks_read_spilled_arguments(small_node):
    @ember.remote
    def first(a):
        return float(a[0])

    refs = [ember.put(np.full(CHUNK, float(i))) for i in range(24)]
    assert ember.get([first.remote(r) for r in refs]) == [float(i) for i in range(24)]


def test_an_object_whose_spill_file_is_gone_is_lost_not_hung(small_node):
    @ember.remote
    def first(a):
        return float(a[0])

    refs = [ember.put(np.full(CHUNK, float(i))) for i in range(24)]
    assert refs[0].hex() in spilled() and refs[1].hex() in spilled()
    first_file = min(os.listdir(small_node.spill_dir))  # the first batch: the oldest objects
    os.unlink(os.path.join(small_node.spill_dir, first_file))
    for _ in range(2):  # the same answer each time: the object stays lost
        with pytest.raises(ObjectLostError, match=f"{refs[0].hex()} is lost: it was spilled"):
            ember.get(refs[0], timeout=10)
    with pytest.raises(ember.exceptions.TaskError) as info:  # a task given it says so too
        ember.get(first.remote(refs[0]), timeout=10)
    assert isinstance(info.value.cause, ObjectLostError)
    assert ember.get(refs[-1])[0] == 23.0  # the objects in memory are fine
    small_node.store.check()


@pytest.mark.parametrize("damage", ["flipped", "truncated"])
def test_an_object_whose_spill_file_changed_is_lost_not_wrong(small_node, damage):
    refs = [ember.put(np.full(CHUNK, float(i))) for i in range(24)]
    assert refs[0].hex() in spilled()
    path = os.path.join(small_node.spill_dir, min(os.listdir(small_node.spill_dir)))
    with open(path, "r+b") as f:
        if damage == "flipped":  # one byte inside the first object's array
            f.seek(4096 * 8)
            byte = f.read(1)
            f.seek(4096 * 8)
            f.write(bytes([byte[0] ^ 0xFF]))
        else:
            f.truncate(CHUNK * 8 // 2)
    why = "is corrupt" if damage == "flipped" else "the file is too short"
    with pytest.raises(ObjectLostError, match=f"object {refs[0].hex()} is lost: .*{why}"):
        ember.get(refs[0], timeout=10)
    assert ember.get(refs[-1])[0] == 23.0  # the objects in memory are fine
    small_node.store.check()


def _mount_tmpfs(path, size: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root, to mount a small tmpfs as the spill disk")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs",
                           str(path)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")


def test_a_full_spill_disk_fails_put_with_out_of_disk_and_loses_nothing(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir(mode=0o700)
    _mount_tmpfs(disk, "24m")  # the session (and its spill directory) on a 24 MiB disk
    try:
        ember.init(num_cpus=1, object_store_memory=STORE, _temp_dir=str(disk),
                   log_to_driver=False, _system_config={"object_spilling_threshold": 1.0})
        try:
            refs, i = [], 0
            with pytest.raises(OutOfDiskError, match="spilling to .* failed .No space left"):
                while i < 40:  # 64 MiB of store + 24 MiB of disk hold ~21 of these
                    refs.append(ember.put(np.full(CHUNK, float(i))))
                    i += 1
            assert 16 <= len(refs) < 40
            assert isinstance(OutOfDiskError("x"), OSError)
            # Everything stored before is still there: in memory, or in the spill files (read
            # back once the objects in memory are dropped: restoring needs store memory, and
            # the disk has no room to spill others for it).
            on_disk = spilled()
            assert on_disk and len(on_disk) < len(refs)
            values = {r.hex(): float(ember.get(r)[0]) for r in refs if r.hex() not in on_disk}
            refs = [r for r in refs if r.hex() in on_disk]
            values.update({r.hex(): float(ember.get(r)[0]) for r in refs})
            assert sorted(values.values()) == [float(j) for j in range(len(values))]
            ember._node.current().store.check()
            assert ember.get(ember.put(np.full(CHUNK, -1.0)))[0] == -1.0  # room again
        finally:
            ember.shutdown()
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_small_objects_share_spill_files_that_go_with_their_last_object(small_node):
    spill_dir = small_node.spill_dir

    def disk_blocks() -> int:
        return sum(os.stat(os.path.join(spill_dir, f)).st_blocks for f in os.listdir(spill_dir))

    refs = [ember.put(np.full(8192, float(i))) for i in range(2048)]  # 64 KiB each, 128 MiB
    settle_spilling(small_node.store)
    on_disk = spilled()
    assert len(on_disk) > 1000
    assert len(os.listdir(spill_dir)) * 32 <= len(on_disk)  # batches, not a file each
    blocks = disk_blocks()
    freed = [r.hex() for r in refs if r.hex() in on_disk][:32]
    refs = [r for r in refs if r.hex() not in freed]
    # Their bytes are punched out of their files (4 KiB pages, in 512-byte blocks), by the
    # driver's spiller thread within 0.1 s.
    deadline = time.monotonic() + 5
    while disk_blocks() > blocks - 32 * (64 << 10) // 512 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert disk_blocks() <= blocks - 32 * (64 << 10) // 512
    assert not set(freed) & {o["object_id"] for o in list_objects(limit=1 << 20)}
    first = next(r for r in refs if r.hex() in on_disk)
    assert ember.get(first)[0] == 32.0  # the first one left, restored
    assert small_node.store.stats()["num_objects"] == 2048 - 32
    del refs, first
    # (punched out by the spiller thread; a batch it is writing is released when written)
    deadline = time.monotonic() + 5
    while os.listdir(spill_dir) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert os.listdir(spill_dir) == []  # every file went with its last object
    assert small_node.store.stats()["num_objects"] == 0
    small_node.store.check()


def test_full_when_nothing_can_be_spilled(small_node):
    views = [ember.get(ember.put(np.ones(CHUNK))) for _ in range(15)]  # all pinned
    with pytest.raises(ObjectStoreFullError, match="spilling cannot make room"):
        ember.put(np.ones(2 * CHUNK))
    del views


def test_spill_files_go_at_shutdown():
    ember.init(num_cpus=1, object_store_memory=STORE)
    node = ember._node.current()
    refs = [ember.put(np.ones(CHUNK)) for _ in range(24)]
    spill_dir = node.spill_dir
    assert os.listdir(spill_dir)
    ember.shutdown()
    assert not os.path.exists(spill_dir)
    del refs


def test_spill_files_go_when_the_driver_is_killed():
    driver = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import time, numpy as np, ember
            ember.init(num_cpus=1, object_store_memory={STORE})
            refs = [ember.put(np.ones({CHUNK})) for _ in range(24)]
            print(ember._node.current().spill_dir, flush=True)
            time.sleep(60)
            """)],
        stdout=subprocess.PIPE, text=True)
    spill_dir = driver.stdout.readline().strip()
    assert os.listdir(spill_dir)
    driver.kill()
    driver.wait(timeout=10)
    deadline = time.monotonic() + 5  # the forkserver sees the driver go and cleans up
    while os.path.exists(spill_dir) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(spill_dir)


def test_a_put_waits_for_memory_the_background_spiller_is_writing_out():
    store_bytes = 256 << 20
    ember.init(num_cpus=1, object_store_memory=store_bytes,
               _system_config={"object_spilling_threshold": 0.5})
    try:
        spill_dir = ember._node.current().spill_dir
        big = ember.put(np.ones(200 << 20, dtype=np.uint8))  # over the threshold: spilled
        deadline = time.monotonic() + 10
        while not os.listdir(spill_dir) and time.monotonic() < deadline:
            time.sleep(0.0005)
        assert os.listdir(spill_dir)  # the spiller is writing it out (or has)
        del big  # its memory comes back when the spiller lets go of it
        again = ember.put(np.ones(200 << 20, dtype=np.uint8))  # no ObjectStoreFullError
        assert ember.get(again)[-1] == 1
    finally:
        ember.shutdown()
