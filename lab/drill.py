"""`lab drill`: a hidden incident to diagnose as in production, scored.

`start` picks a case from a seeded generator (a diagnosable scenario, its
variant, parameters and load, as the eval's corpus does: lab/corpus.py)
and starts it in the background: a real `lab run` with `blind` set (lab/runner.py:
the run dir, the app's /metrics and start log and Prometheus' labels do not name
the scenario), its console output in the drill's own folder. The person
investigates with what production has: the app's /metrics, the dashboards,
`lab drill --report` (a report of the blinded run so far), py-spy or memray on
the app's pid. `answer` stops the run (as Ctrl-C does: toggles reset, partial
report kept), scores the answer and keeps it on the board. `hint` shows one
piece of the engine's evidence, at a cost. `reveal` shows the case and the
evidence the engine used.

Scoring: a right answer is worth 100 points, less 1 per 10 s taken beyond the
first minute (at most 50) and 15 per hint; a wrong one 0. Right is the
scenario of a faulty run; for a fixed run of a network scenario, the condition of
the environment it applies; for any other fixed run, "healthy".

On disk (`DrillBook`, format 1), under `.lab/drills/`: `current.json` (the drill
under way: its id, the background process, hints used), `<id>/case.json` (the
answer: reading it is cheating, as reading meta.json is), `<id>/lab-run.log`,
`<id>/<time>-drill/` (the run dir) and `board.json` (every answer, scored).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import orjson
from rich.console import Console

import faults
from lab.errors import LabError
from lab.paths import lab_home

__all__ = ["FORMAT", "DrillBook", "DrillCase", "pick_case", "score"]

FORMAT = 1
Level = Literal["easy", "hard"]
# Points: see the module's docstring.
FULL, PER_HINT, GRACE_S, PER_10S, MAX_TIME_PENALTY = 100, 15, 60, 1, 50
REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class DrillCase:
    id: str
    seed: int
    level: str
    slug: str
    fixed: bool
    params: dict[str, Any]
    users: int | None
    rate: float | None
    shape: str
    duration_s: int

    @classmethod
    def load(cls, path: Path) -> DrillCase:
        """A case.json (DrillBook's format 1)."""
        data = orjson.loads(path.read_bytes())
        data.pop("format", None)
        return cls(**data)

    @property
    def answer(self) -> str:
        from reports.diagnosis.evaluate import expected_answer

        variant = "fixed" if self.fixed else "faulty"
        return expected_answer({"scenario": self.slug, "variant": variant})


def pick_case(seed: int, level: Level, minutes: float) -> DrillCase:
    """The hidden case of a seed: the same seed, the same case."""
    from lab.corpus import DIAGNOSABLE_KINDS, varied_load, varied_params

    if level == "hard":
        raise LabError(
            "--level hard (a second fault or a network condition at once) needs a run that "
            "switches on two scenarios, which the lab cannot do yet; play --level easy"
        )
    rng = random.Random(seed)
    pool = [s for s in faults.all_scenarios() if s.kind in DIAGNOSABLE_KINDS]
    scenario = rng.choice(pool)
    # Mostly an incident; now and then the fixed code, whose answer is "healthy"
    # (or the network condition it copes with).
    fixed = rng.random() < 0.2
    load = varied_load(scenario, rng)
    return DrillCase(
        id=f"{time.strftime('%Y%m%d-%H%M%S')}-{seed}",
        seed=seed,
        level=level,
        slug=scenario.slug,
        fixed=fixed,
        params=varied_params(scenario, rng),
        users=load.get("users"),
        rate=load.get("rate"),
        shape=load.get("shape", "constant"),
        duration_s=max(10, round(minutes * 60)),
    )


def score(right: bool, seconds: float, hints: int) -> int:
    if not right:
        return 0
    late = max(0.0, seconds - GRACE_S)
    return max(0, FULL - min(MAX_TIME_PENALTY, int(late // 10) * PER_10S) - PER_HINT * hints)


def background_run(case_file: str) -> None:
    """The drill's run, in the background process `start` spawns (`python -c`)."""
    from lab.runner import RunOptions
    from lab.runner import run as run_one

    case = DrillCase.load(Path(case_file))
    options = RunOptions(
        slug=case.slug, fixed=case.fixed, duration_s=float(case.duration_s), users=case.users,
        shape=case.shape, params=dict(case.params), rate=case.rate, out=Path(case_file).parent,
        blind=True,
    )  # fmt: skip
    result = run_one(options, Console(stderr=True))
    sys.exit(0 if result.status == "completed" else 130)


class DrillBook:
    """`.lab/drills/`: the drill under way, each case, and the score board."""

    def __init__(self, home: Path | None = None) -> None:
        self.root = (home or lab_home()) / "drills"
        self.current_path = self.root / "current.json"
        self.board_path = self.root / "board.json"

    # --- on-disk format

    def _read(self, path: Path) -> Any:
        try:
            data = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            return None
        return data

    def _write(self, path: Path, data: dict[str, Any]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps({"format": FORMAT, **data}, option=orjson.OPT_INDENT_2))
        tmp.replace(path)

    def current(self) -> dict[str, Any] | None:
        data: dict[str, Any] | None = self._read(self.current_path)
        return data

    def case(self, current: dict[str, Any]) -> DrillCase:
        data = self._read(self.root / current["id"] / "case.json")
        if data is None:
            folder = self.root / current["id"]
            raise LabError(f"the drill's case file is gone ({folder}); start another drill")
        data.pop("format", None)
        return DrillCase(**data)

    def board(self) -> list[dict[str, Any]]:
        data = self._read(self.board_path)
        return list(data["answers"]) if data else []

    def run_dir(self, current: dict[str, Any]) -> Path | None:
        runs = sorted((self.root / current["id"]).glob("*-drill*/meta.json"))
        return runs[-1].parent if runs else None

    # --- the drill's life

    def start(self, level: Level, seed: int | None, minutes: float, console: Console) -> Path:
        running = self.current()
        if running is not None and _alive(int(running["pid"])):
            raise LabError("a drill is under way: answer it (lab drill --answer SLUG) first")
        seed = seed if seed is not None else random.SystemRandom().randrange(1_000_000)
        case = pick_case(seed, level, minutes)
        folder = self.root / case.id
        self._write(folder / "case.json", asdict(case))
        case_file = str(folder / "case.json")
        code = f"from lab.drill import background_run; background_run({case_file!r})"
        # Its own session: the run outlives this command and stops on --answer.
        with (folder / "lab-run.log").open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-c", code], cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True, env=os.environ.copy(),
            )  # fmt: skip
        self._write(
            self.current_path,
            {"id": case.id, "pid": process.pid, "started": time.time(), "hints": 0},
        )
        console.print(f"drill {case.id} (seed {seed}, level {level}): starting the incident...")
        try:
            meta = self._wait_for_app(folder, process, console)
        except KeyboardInterrupt:  # Ctrl-C while it starts: no drill, nothing left running
            _stop(process.pid)
            self.current_path.unlink(missing_ok=True)
            raise
        port = meta.get("app", {}).get("port")
        console.print(
            f"An incident is under way at http://127.0.0.1:{port} for {case.duration_s} s.\n"
            f"  its metrics: http://127.0.0.1:{port}/metrics (and the dashboards, when "
            "Prometheus runs: make up)\n"
            f"  the app's pid (py-spy dump --pid, memray attach): {meta.get('app_pid', '?')}\n"
            "  what the lab saw so far, blind: lab drill --report\n"
            "  a hint (costs 15 points): lab drill --hint\n"
            "  your answer: lab drill --answer SLUG (lab scenarios lists them; 'healthy' "
            "or a condition of the environment also count)"
        )
        return folder

    def _wait_for_app(
        self, folder: Path, process: subprocess.Popen[bytes], console: Console
    ) -> dict[str, Any]:
        """The run's meta.json once its load started (its app is up), or an error."""
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            runs = sorted(folder.glob("*-drill*/meta.json"))
            if runs:
                with contextlib.suppress(OSError, orjson.JSONDecodeError):
                    meta = orjson.loads(runs[-1].read_bytes())
                    if meta.get("load_started_at"):
                        meta["app_pid"] = _app_pid(runs[-1].parent)
                        return dict(meta)
            if process.poll() is not None:
                break
            time.sleep(0.5)
        tail = (folder / "lab-run.log").read_text(errors="replace").strip().splitlines()[-3:]
        self.current_path.unlink(missing_ok=True)
        _stop(process.pid)
        raise LabError(
            "the drill's run did not start; its last words: "
            + " / ".join(tail)
            + f" (all of it: {folder / 'lab-run.log'})"
        )

    def _require(self) -> dict[str, Any]:
        current = self.current()
        if current is None:
            raise LabError("no drill under way: start one with lab drill")
        return current

    def report(self) -> Path:
        """A report of the drill's run so far, from its blinded copy."""
        from reports import build_report
        from reports.diagnosis.blind import blind_copy

        current = self._require()
        run_dir = self.run_dir(current)
        if run_dir is None:
            raise LabError("the drill's run has no run dir yet; wait a few seconds")
        view = self.root / current["id"] / "view"
        if view.exists():
            import shutil

            shutil.rmtree(view)
        blind_copy(run_dir, view)
        return build_report(view)

    def hint(self) -> str:
        """One more piece of the engine's evidence of the run so far."""
        from reports.diagnosis import diagnose

        current = self._require()
        run_dir = self.run_dir(current)
        if run_dir is None:
            raise LabError("the drill's run has no run dir yet; wait a few seconds")
        found = diagnose(run_dir)
        lines = [line for c in found.candidates for line in c.evidence]
        hints = int(current.get("hints", 0))
        current["hints"] = hints + 1
        self._write(self.current_path, current)
        if not lines:
            return "the evidence so far shows nothing past a healthy bound (a hint still counts)"
        return lines[min(hints, len(lines) - 1)]

    def answer(self, cause: str, console: Console) -> dict[str, Any]:
        current = self._require()
        case = self.case(current)
        seconds = time.time() - float(current["started"])
        console.print("stopping the drill's run (its toggles reset, its report kept)...")
        _stop(int(current["pid"]))
        right = cause.strip() == case.answer
        points = score(right, seconds, int(current.get("hints", 0)))
        entry = {
            "id": case.id, "seed": case.seed, "level": case.level, "answer": cause,
            "right": right, "seconds": round(seconds, 1), "hints": int(current.get("hints", 0)),
            "points": points, "at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }  # fmt: skip
        self._write(self.board_path, {"answers": [*self.board(), entry]})
        self.current_path.unlink(missing_ok=True)
        self._write(self.root / case.id / "answered.json", entry)
        return entry

    def reveal(self, drill_id: str | None = None) -> str:
        """The case of the drill (the last answered one by default) and the evidence
        the engine used."""
        from reports.diagnosis import diagnose
        from reports.diagnosis.render import diagnosis_text

        if drill_id is None:
            board = self.board()
            if not board:
                raise LabError("no drill answered yet: answer one (lab drill --answer SLUG) first")
            drill_id = str(board[-1]["id"])
        folder = self.root / drill_id
        if self._read(folder / "answered.json") is None:
            raise LabError(f"drill {drill_id} is not answered yet: answer it before the reveal")
        data = self._read(folder / "case.json")
        if data is None:
            raise LabError(f"no drill {drill_id} under {self.root}")
        data.pop("format", None)
        case = DrillCase(**data)
        variant = "fixed" if case.fixed else "faulty"
        params = ", ".join(f"{k}={v}" for k, v in sorted(case.params.items())) or "defaults"
        lines = [
            f"drill {case.id}: {case.slug}, {variant} variant ({params}); "
            f"the answer: {case.answer}",
        ]
        run_dir = self.run_dir({"id": drill_id})
        if run_dir is not None:
            lines += ["what the engine saw, blind:", diagnosis_text(diagnose(run_dir))]
        lines.append(f"see the fix: make fault={case.slug} compare")
        return "\n".join(lines)


def _app_pid(run_dir: Path) -> int | None:
    """The app's pid from its state: the lab records it in the run's meta.json."""
    with contextlib.suppress(OSError, orjson.JSONDecodeError, KeyError, TypeError):
        meta = orjson.loads((run_dir / "meta.json").read_bytes())
        pid = meta["app"].get("pid")
        return int(pid) if pid else None
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop(pid: int, timeout_s: float = 60.0) -> None:
    """SIGTERM to the drill's run, which stops as on Ctrl-C (lab/runner.py); SIGKILL
    to its process group if it has not exited in time."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # not our child (another `lab drill` started it)
            if not _alive(pid):
                return
        else:
            if done:
                return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
