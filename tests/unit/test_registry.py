"""The registry finds scenarios by walking faults/, and validates their parameters."""

from __future__ import annotations

import os
import threading
import time

import pytest

import faults
from faults import memory_leak
from faults.memory_leak import BoundedTTLPageCache, PageCacheParams, UnboundedPageCache

pytestmark = pytest.mark.unit


def test_discovers_memory_leak_without_a_list() -> None:
    slugs = [s.slug for s in faults.all_scenarios()]
    assert "memory-leak" in slugs
    assert slugs == sorted(slugs)


def test_every_scenario_keeps_the_contract() -> None:
    for scenario in faults.all_scenarios():
        assert scenario.seeds and all(1 <= n <= 50 for n in scenario.seeds), scenario.slug
        assert scenario.kind in {"fault", "network", "pattern", "deployment", "release"}
        assert scenario.diagnosis.strip(), f"{scenario.slug} has no diagnosis notes"
        assert scenario.symptom.op in {">", ">=", "<", "<="}
        defaults = scenario.params()
        assert scenario.build("faulty", defaults) is not None
        assert scenario.build("fixed", defaults) is not None
        if scenario.kind == "deployment":
            assert scenario.deployment("faulty", defaults) is not None
        if scenario.kind == "release":
            assert scenario.procedure("faulty", defaults) is not None
            assert scenario.procedure("fixed", defaults) is not None


def test_run_options_left_open_come_from_the_scenario() -> None:
    from lab.runner import RunOptions, resolve

    leak = faults.get("memory-leak")
    options = resolve(RunOptions("memory-leak"), leak, leak.params())
    assert (options.users, options.duration_s, options.workers) == (50, 30.0, 1)
    chosen = resolve(
        RunOptions("memory-leak", users=3, duration_s=5, workers=2), leak, leak.params()
    )
    assert (chosen.users, chosen.duration_s, chosen.workers) == (3, 5, 2)
    single = faults.get("single-worker")
    faulty = resolve(RunOptions("single-worker"), single, single.params())
    fixed = resolve(RunOptions("single-worker", fixed=True), single, single.params())
    assert faulty.workers == 1
    assert fixed.workers == (os.cpu_count() or 1)


def test_unknown_slug_names_the_valid_ones() -> None:
    with pytest.raises(faults.UnknownScenario) as info:
        faults.get("memory-leek")
    assert "memory-leak" in str(info.value)
    assert "memory-leek" in str(info.value)


def test_bad_params_are_refused_with_the_accepted_ranges() -> None:
    scenario = faults.get("memory-leak")
    with pytest.raises(faults.InvalidParams) as info:
        faults.validate_params(scenario, {"related": 10_000})
    message = str(info.value)
    assert "related" in message and "<= 200" in message
    with pytest.raises(faults.InvalidParams, match="nonsense"):
        faults.validate_params(scenario, {"nonsense": 1})


def test_runtime_picks_variant_from_the_toggle_store(tmp_path) -> None:
    store = faults.ToggleStore(tmp_path / "t.json", poll_interval=0)
    runtime = faults.FaultRuntime(store)
    assert isinstance(runtime.pick(memory_leak.SCENARIO), BoundedTTLPageCache)
    store.enable("memory-leak", {"related": 3})
    picked = runtime.pick(memory_leak.SCENARIO)
    assert isinstance(picked, UnboundedPageCache)
    assert picked.related == 3
    assert runtime.pick(memory_leak.SCENARIO) is picked  # built once per worker, then kept
    store.reset()
    assert isinstance(runtime.pick(memory_leak.SCENARIO), BoundedTTLPageCache)


def test_a_fixed_entry_builds_the_fixed_variant_with_its_params(tmp_path) -> None:
    """`lab run SLUG --fixed --param ...`: the fault stays off, the fixed variant is tuned."""
    store = faults.ToggleStore(tmp_path / "t.json", poll_interval=0)
    runtime = faults.FaultRuntime(store)
    store.enable("memory-leak", {"max_entries": 7}, "fixed")
    picked = runtime.pick(memory_leak.SCENARIO)
    assert isinstance(picked, BoundedTTLPageCache)
    assert picked.max_entries == 7
    assert runtime.variant("memory-leak") == ("fixed", {"max_entries": 7})
    assert store.faulty() == {}  # tuned, not switched on
    store.enable("memory-leak", {"max_entries": 7})  # the same params, now faulty
    assert isinstance(runtime.pick(memory_leak.SCENARIO), UnboundedPageCache)
    assert list(store.faulty()) == ["memory-leak"]


def test_switching_another_fault_keeps_a_seams_built_object(tmp_path) -> None:
    store = faults.ToggleStore(tmp_path / "t.json", poll_interval=0)
    runtime = faults.FaultRuntime(store)
    store.enable("memory-leak", {"related": 3})
    leaking = runtime.pick(memory_leak.SCENARIO)
    store.enable("cpu-bound", {})  # the file changes, memory-leak's entry does not
    assert runtime.pick(memory_leak.SCENARIO) is leaking
    store.enable("memory-leak", {"related": 4})
    assert runtime.pick(memory_leak.SCENARIO) is not leaking


def test_seams_off_always_serve_the_fixed_variant(tmp_path) -> None:
    store = faults.ToggleStore(tmp_path / "t.json", poll_interval=0)
    store.enable("memory-leak", {})
    assert isinstance(
        faults.FaultRuntime(store, seams=False).pick(memory_leak.SCENARIO), BoundedTTLPageCache
    )


def test_fixed_cache_is_bounded_and_expires() -> None:
    cache = BoundedTTLPageCache(PageCacheParams(max_entries=3, ttl_seconds=0.05))
    for i in range(10):
        cache.put((i, "s", "USD"), b"x")
    assert len(cache) == 3
    assert cache.get((9, "s", "USD")) == b"x"
    assert cache.get((0, "s", "USD")) is None
    import time

    time.sleep(0.06)
    assert cache.get((9, "s", "USD")) is None


def test_faulty_cache_grows_without_bound() -> None:
    cache = UnboundedPageCache(PageCacheParams())
    before = len(cache)
    for i in range(5000):
        cache.put((i, f"unit-{i}", "USD"), bytes(64))
    assert len(cache) == before + 5000


def test_every_toggle_write_gets_a_later_mtime_than_the_file_it_replaces(tmp_path) -> None:
    """Readers key their cache on (mtime, inode), and a replaced file's inode is reused:
    a key repeated by a later file would hide that file's change from every reader. A
    coarse file clock (two writes in one tick) or a clock stepped back repeats mtimes;
    here the current file's mtime is put a second ahead, as a clock step would."""
    path = tmp_path / "t.json"
    writer = faults.ToggleStore(path, poll_interval=0)
    reader = faults.ToggleStore(path, poll_interval=0)  # another process's
    writer.enable("memory-leak", {})
    assert "memory-leak" in reader.faulty()
    ahead = path.stat().st_mtime_ns + 1_000_000_000
    os.utime(path, ns=(ahead, ahead))
    writer.disable("memory-leak")
    assert path.stat().st_mtime_ns > ahead
    assert reader.faulty() == {}


def test_a_reader_never_takes_the_old_state_while_another_thread_looks(tmp_path) -> None:
    """A worker reads the toggles from many threads (requests in the threadpool, the
    app's metrics task in the event loop). While one thread is reading the file, another
    that asks must wait for what it finds, not be handed the state from before (which
    made a toggle, written and read back by one client, look unwritten in CI)."""
    path = tmp_path / "t.json"
    store = faults.ToggleStore(path, poll_interval=0.3)
    store.enable("memory-leak", {})
    assert "memory-leak" in store.faulty()
    faults.ToggleStore(path).disable("memory-leak")  # another process's write
    time.sleep(store.poll_interval)  # the store's next look is due

    looking, go = threading.Event(), threading.Event()

    class HeldPath(type(path)):  # type: ignore[misc]
        """The store's file, whose next stat() waits until the test lets it go."""

        def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
            if not looking.is_set():
                looking.set()
                go.wait(timeout=30)
            return super().stat(follow_symlinks=follow_symlinks)

    store.path = HeldPath(path)
    first = threading.Thread(target=store.active)
    first.start()
    assert looking.wait(timeout=30)
    seen: list[faults.ToggleState] = []
    second = threading.Thread(target=lambda: seen.append(store.active()))
    second.start()
    second.join(timeout=0.5)  # handed a state at once, or waiting for the look
    go.set()
    first.join(timeout=30)
    second.join(timeout=30)
    assert seen == [{}]
