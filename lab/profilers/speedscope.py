"""py-spy's speedscope document, read: the hottest functions of a recording.

The report's top-frames table comes from here (profile.json's `top`); the
flamegraph is py-spy's own SVG (lab/profilers/pyspy.py).
"""

from __future__ import annotations

import collections
from typing import Any

from lab.profilers._common import TOP_N, short_path

__all__ = ["is_idle", "is_pseudo", "pyspy_top", "speedscope_stacks"]

# Leaf frames that mean "this thread is parked, waiting": a sample ending in one of them
# says nothing about what is hot, and there are many of them (event loop in epoll, idle
# threadpool workers). py-spy drops most idle threads itself (no --idle), but not those
# it catches waking up or re-taking the GIL, nor uvloop's C loop waiting in epoll (its
# deepest Python frame is asyncio's Runner.run). Matched on (path suffix, bare name).
_IDLE_LEAVES: frozenset[tuple[str, str]] = frozenset(
    {
        ("threading.py", "wait"),
        ("threading.py", "_wait_for_tstate_lock"),
        ("threading.py", "join"),
        ("queue.py", "get"),
        ("selectors.py", "select"),
        ("asyncio/base_events.py", "_run_once"),
        ("asyncio/base_events.py", "run_forever"),
        ("asyncio/base_events.py", "run_until_complete"),
        ("asyncio/runners.py", "run"),
        ("uvloop/__init__.py", "run"),
        ("uvicorn/_compat.py", "asyncio_run"),
        ("concurrent/futures/thread.py", "_worker"),
        ("gunicorn/arbiter.py", "sleep"),
        ("gunicorn/arbiter.py", "run"),
    }
)


def _bare(function: str) -> str:
    """py-spy names methods `Class.method`; the idle table uses the bare name."""
    return function.rsplit(".", 1)[-1]


def is_idle(frame: dict[str, Any]) -> bool:
    file = str(frame.get("file") or "").replace("\\", "/")
    name = _bare(str(frame.get("name") or ""))
    return any(file.endswith(suffix) and name == fn for suffix, fn in _IDLE_LEAVES)


def is_pseudo(frame: dict[str, Any]) -> bool:
    """py-spy's `process PID:"cmd"` frames (with --subprocesses): no code, no file."""
    return not frame.get("file") and str(frame.get("name", "")).startswith("process ")


def speedscope_stacks(data: dict[str, Any]) -> tuple[list[dict[str, Any]], list[list[int]]]:
    """Frames and one root-to-leaf stack per sample, over all threads and processes."""
    frames: list[dict[str, Any]] = data["shared"]["frames"]
    stacks: list[list[int]] = []
    for prof in data.get("profiles", []):
        if prof.get("type") == "sampled":
            # py-spy writes one sample per stack (weights are the sampling interval).
            stacks.extend(list(s) for s in prof.get("samples", []))
    return frames, stacks


def pyspy_top(data: dict[str, Any], n: int = TOP_N) -> tuple[list[dict[str, Any]], int, int]:
    """(rows, busy samples, idle samples) from a py-spy speedscope document.

    Rows are functions ranked by *self* share (the sample's leaf is in them: they burn the
    CPU themselves, C calls they make included), with `total`, the *inclusive* share (they
    are anywhere on the stack). Self answers "which function is hot"; ranking by total
    would put the framework's middleware chain first, at ~100%. Shares are of the busy
    samples: samples whose leaf is an idle wait are dropped first.
    """
    frames, stacks = speedscope_stacks(data)
    self_n: collections.Counter[tuple[str, str]] = collections.Counter()
    total_n: collections.Counter[tuple[str, str]] = collections.Counter()
    lines: dict[tuple[str, str], collections.Counter[int]] = collections.defaultdict(
        collections.Counter
    )
    busy = idle = 0
    for stack in stacks:
        real = [i for i in stack if not is_pseudo(frames[i])]
        if not real:
            continue
        leaf = frames[real[-1]]
        if is_idle(leaf):
            idle += 1
            continue
        busy += 1
        leaf_key = (str(leaf["name"]), str(leaf.get("file") or ""))
        self_n[leaf_key] += 1
        lines[leaf_key][int(leaf.get("line") or 0)] += 1
        seen: set[tuple[str, str]] = set()
        for i in real:
            key = (str(frames[i]["name"]), str(frames[i].get("file") or ""))
            if key not in seen:  # recursion counts once per sample
                seen.add(key)
                total_n[key] += 1
    rows = []
    for key, count in self_n.most_common(n):
        name, file = key
        line = lines[key].most_common(1)[0][0]  # the hottest line of the function
        rows.append(
            {
                "function": name,
                "location": f"{short_path(file)}:{line}",
                "value": round(count / busy, 4),
                "unit": "share",
                "total": round(total_n[key] / busy, 4),
                "samples": count,
            }
        )
    return rows, busy, idle
