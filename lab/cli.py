"""`lab`: argument parsing only. The work is in lab/commands/ and lab/runner.py.

Conventions every command follows: progress and messages go to stderr; the
last line on stdout is where the output went (a run dir, a comparison dir), so
`RUN=$(lab run memory-leak)` works in scripts. A user mistake is one sentence
on stderr and exit code 2; an interrupted run exits 130 with its partial report.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, get_type_hints

import typer
from rich.console import Console

from lab.errors import LabError
from lab.paths import parse_duration

if TYPE_CHECKING:
    from lab.runner import RunOptions, RunResult

__all__ = ["app", "main"]

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="A chaos and load diagnosis lab for FastAPI: reproduce, see, fix, prove.",
)
err = Console(stderr=True)

Duration = Annotated[
    str | None,
    typer.Option("--duration", "-d", help="load duration: 30s, 2m, 90 [default: the scenario's]"),
]
Users = Annotated[
    int | None,
    typer.Option(
        "--users", "-u",
        help="concurrent Locust users; with --rate, the cap on requests in flight "
        "[default: the scenario's; with --rate, about 1 s of requests, 10 to 1,000]",
    ),
]  # fmt: skip
SpawnRate = Annotated[
    float | None, typer.Option("--spawn-rate", "-r", help="users started per second")
]
Shape = Annotated[str, typer.Option(help="load shape: constant, step or spike")]
Workers = Annotated[
    int | None,
    typer.Option(
        "--workers", "-w",
        help="app workers (>1: gunicorn + uvicorn workers) [default: 1, or the deployment's]",
    ),
]  # fmt: skip
Profile = Annotated[str, typer.Option("--profile", "-p", help="none, py-spy or memray")]
Out = Annotated[Path, typer.Option("--out", help="where run dirs go")]
Params = Annotated[
    list[str] | None,
    typer.Option("--param", help="scenario parameter name=value (repeatable)"),
]
Rows = Annotated[int, typer.Option("--rows", help="products in the seeded shop database")]
RunRows = Annotated[
    int | None,
    typer.Option(
        "--rows", help="products in the seeded shop database [default: the scenario's, or 10000]"
    ),
]
Workload = Annotated[
    str | None,
    typer.Option("--workload", help="Locust workload (default: the scenario's own), e.g. mixed"),
]
Rate = Annotated[
    float | None,
    typer.Option(
        "--rate",
        help="open model: requests per second sent on a schedule whatever the answers, latency "
        "counted from each request's intended time; --users then caps requests in flight "
        "(0: the closed model, each user waits for its answer) [default: the scenario's, "
        "closed for most]",
    ),
]
LoadProcesses = Annotated[
    int,
    typer.Option(
        "--load-processes", help="Locust processes (>1: a master and that many workers), "
        "at most one per core",
    ),
]  # fmt: skip


def _parse_params(items: list[str] | None) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise LabError(f"--param takes name=value, got '{item}'")
        name, raw = item.split("=", 1)
        try:
            params[name.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            params[name.strip()] = raw
    return params


def _duration(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise LabError(f"--duration: {exc}") from None


@dataclass
class RunFlags:
    """The options of one run, shared by `lab run` and `lab prove` (`make load`, `make
    compare`): adding an option to a run is a field here and its line in `options()`."""

    duration: Duration = None
    users: Users = None
    spawn_rate: SpawnRate = None
    shape: Shape = "constant"
    workers: Workers = None
    profile: Profile = "none"
    out: Out = Path("runs")
    param: Params = None
    rows: RunRows = None
    workload: Workload = None
    rate: Rate = None
    load_processes: LoadProcesses = 1

    def options(self, slug: str, fixed: bool = False) -> RunOptions:
        from lab.runner import RunOptions

        return RunOptions(
            slug=slug, fixed=fixed, duration_s=_duration(self.duration), users=self.users,
            spawn_rate=self.spawn_rate, shape=self.shape, workers=self.workers,
            profile=self.profile, out=self.out, params=_parse_params(self.param),
            seed_rows=self.rows, workload=self.workload, rate=self.rate,
            load_processes=self.load_processes,
        )  # fmt: skip


def with_run_flags(command: Callable[..., None]) -> Callable[..., None]:
    """`command(..., flags: RunFlags)` as a typer command: its own parameters first, then
    every field of RunFlags as an option, handed to it as one `flags` value.

    Typer reads a command's options from its signature, so the wrapper gets one made
    of both; the fields keep their `Annotated` options, hence their flags, help and
    defaults.
    """
    hints = get_type_hints(RunFlags, include_extras=True)
    shared = [
        inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default,
                          annotation=hints[f.name])
        for f in fields(RunFlags)
    ]  # fmt: skip
    signature = inspect.signature(command, eval_str=True)
    own = [p for p in signature.parameters.values() if p.name != "flags"]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> None:
        flags = RunFlags(**{f.name: kwargs.pop(f.name) for f in fields(RunFlags)})
        command(**kwargs, flags=flags)

    parameters = [*own, *shared]
    wrapper.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": None}
    return wrapper


def _finish_run(result: RunResult) -> None:
    summary = result.summary or {}
    symptom = summary.get("symptom") or {}
    if symptom:
        word = "PRESENT" if symptom.get("present") else "absent"
        err.print(
            f"symptom {word}: {symptom.get('name')} = {symptom.get('value')} "
            f"({symptom.get('op')} {symptom.get('threshold')} means present)"
        )
    err.print(f"report: {result.run_dir / 'report.html'}")
    if result.status == "failed":
        err.print(f"[red]run failed:[/] {result.error}")
    elif result.status == "interrupted":
        err.print("[yellow]run interrupted: the partial report above holds what was measured")
    print(result.run_dir)
    if result.status == "failed":
        raise typer.Exit(1)
    if result.status == "interrupted":
        raise typer.Exit(130)


@app.command("scenarios")
def scenarios_cmd(
    slug: Annotated[str | None, typer.Argument(help="show one scenario's page")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable")] = False,
) -> None:
    """The catalogue: slug, seed questions, needs. With SLUG: that scenario's page."""
    from lab.commands import scenarios

    scenarios.run(slug, as_json)


@app.command("run")
@with_run_flags
def run_cmd(
    slug: Annotated[str, typer.Argument(help="scenario slug, see `lab scenarios`")],
    flags: RunFlags,
    fixed: Annotated[bool, typer.Option("--fixed", help="the fixed variant")] = False,
) -> None:
    """Run a scenario variant under load; print the run dir last."""
    from lab.runner import run

    _finish_run(run(flags.options(slug, fixed), err))


@app.command("prove")
@with_run_flags
def prove_cmd(
    slug: Annotated[str, typer.Argument(help="scenario slug")],
    flags: RunFlags,
) -> None:
    """Faulty then fixed under the same load, then the before/after comparison."""
    from lab.commands import prove

    out_dir, _before, _after = prove.run(flags.options(slug), err)
    _print_comparison(out_dir)


def _print_comparison(out_dir: Path) -> None:
    data = json.loads((out_dir / "comparison.json").read_text())
    err.print(f"[bold]{data.get('headline', '')}")
    for metric in data.get("metrics", []):
        if metric.get("ratio") is None:
            continue
        significant = metric.get("significant")
        noise = {True: "beyond noise", False: "within noise", None: "not tested"}[significant]
        err.print(
            f"  {metric['name']:32} {metric['before']:>10.4g} -> {metric['after']:<10.4g} "
            f"x{metric['ratio']:<6.2f} {noise}"
        )
    diagnosis = data.get("diagnosis") or {}
    if diagnosis.get("sentence"):
        err.print(f"diagnosis (blind): {diagnosis['sentence']}")
    err.print(f"comparison: {out_dir / 'comparison.html'}")
    print(out_dir)


@app.command("compare")
def compare_cmd(
    before: Annotated[Path, typer.Argument(help="run dir before the fix")],
    after: Annotated[Path, typer.Argument(help="run dir after the fix")],
    out: Annotated[Path | None, typer.Option("--out", help="comparison dir")] = None,
) -> None:
    """Compare two runs; print the comparison dir last."""
    from lab.commands import compare

    _print_comparison(compare.run(before, after, out))


@app.command("report")
def report_cmd(run_dir: Annotated[Path, typer.Argument(help="a run dir")]) -> None:
    """Rebuild a run's report from its run dir alone."""
    from lab.commands import report

    out = report.run(run_dir)
    err.print(f"report: {out / 'report.html'}")
    print(out)


@app.command("serve")
def serve_cmd(
    slug: Annotated[str | None, typer.Argument(help="scenario to switch on")] = None,
    fixed: Annotated[bool, typer.Option("--fixed")] = False,
    workers: Workers = None,
    port: Annotated[int, typer.Option("--port")] = 8000,
    param: Params = None,
    rows: RunRows = None,
) -> None:
    """The app alone in the foreground, with a scenario's variant on."""
    from lab.commands import serve

    raise typer.Exit(serve.run(slug, fixed, workers, port, _parse_params(param), rows, err))


@app.command("handbook")
def handbook_cmd(
    out: Annotated[Path, typer.Option("--out", help="where the pages go")] = Path("docs/scenarios"),
) -> None:
    """Write every scenario's page (diagnosis, diff of the fix, follow-ups) as markdown."""
    from lab.commands.scenarios import write_handbook

    pages = write_handbook(out)
    err.print(f"{len(pages) - 1} scenario pages")
    print(out)


@app.command("chaos")
def chaos_cmd(
    slug: Annotated[str | None, typer.Argument(help="a network scenario")] = None,
    reset: Annotated[bool, typer.Option("--reset", help="remove every toxic")] = False,
) -> None:
    """Apply a network scenario's toxics to the running lab (or --reset them)."""
    from lab.commands import chaos

    toxics = chaos.run(slug, reset)
    for toxic in toxics:
        err.print(f"{toxic['link']}: {toxic['type']} {toxic['attributes']} "
                  f"({toxic['stream']}, toxicity {toxic['toxicity']})")  # fmt: skip
    err.print("toxics applied; `lab chaos --reset` removes them" if toxics else "no toxics left")
    print(json.dumps(toxics))


@app.command("seed")
def seed_cmd(
    rows: Rows = 10_000,
    database_url: Annotated[str | None, typer.Option("--database-url")] = None,
) -> None:
    """Migrate and fill the shop database with deterministic data."""
    from lab.commands import seed

    counts = seed.run(rows, database_url, err)
    err.print(", ".join(f"{k}: {v:,}" for k, v in counts.items()))


@app.command("bench")
def bench_cmd(
    part: Annotated[
        list[str] | None,
        typer.Option(
            "--part",
            help=(
                "catalogue, capacity, overhead, outage, slo-sweep, heavy-json-steps, "
                "worker-sizing or log-transports (repeatable; default: all)"
            ),
        ),
    ] = None,
    only: Annotated[
        list[str] | None, typer.Option("--only", help="catalogue: just this scenario (repeatable)")
    ] = None,
    duration: Duration = None,
    users: Annotated[int, typer.Option("--users", help="overhead: Locust users")] = 32,
    rounds: Annotated[int, typer.Option(help="overhead: A/B alternations")] = 3,
    out: Out = Path("runs/bench"),
) -> None:
    """Faulty/fixed ratio of every scenario, capacity and overhead, measured side by side."""
    from lab.commands import bench

    print(bench.run(part or bench.PARTS, only, _duration(duration), users, rounds, out, err))


@app.command("diagnose")
def diagnose_cmd(
    run_dir: Annotated[Path | None, typer.Argument(help="a run dir")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable")] = False,
    eval_roots: Annotated[
        list[Path] | None,
        typer.Option(
            "--eval",
            help="score the diagnosis over every completed run dir under this folder "
            "(repeatable): AC@1, AC@3 per expected answer",
        ),
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="--eval: where the table goes")] = Path(
        "runs/eval"
    ),
) -> None:
    """Name the root cause of a run from its evidence alone, blind to the scenario."""
    from lab.commands import diagnose

    if eval_roots:
        table = diagnose.run_eval(eval_roots, out, err)
        err.print(f"eval: {table}")
        print(table)
        return
    if run_dir is None:
        raise LabError("pass a run dir (lab diagnose runs/<run-id>) or --eval FOLDER")
    text, written = diagnose.run(run_dir, as_json)
    print(text)
    if written is not None and not as_json:
        err.print(f"diagnosis: {written}")
        print(written)


@app.command("eval")
def eval_cmd(
    seed: Annotated[int, typer.Option(help="the corpus' seed: the same seed, the same runs")] = 0,
    per_variant: Annotated[
        int, typer.Option("--per-variant", help="runs of each variant of each scenario")
    ] = 2,
    only: Annotated[
        list[str] | None, typer.Option("--only", help="just this scenario (repeatable)")
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="where the corpus and table go")] = Path(
        "runs/eval"
    ),
) -> None:
    """Run a seeded corpus of every diagnosable scenario, diagnose each run blind, score it."""
    from lab.commands import eval as eval_command

    if per_variant < 1:
        raise LabError("--per-variant must be at least 1")
    table = eval_command.run(seed, per_variant, only or [], out, err)
    err.print(f"eval: {table}")
    print(table)


@app.command("drill")
def drill_cmd(
    level: Annotated[str, typer.Option(help="easy (one cause) or hard (two at once)")] = "easy",
    seed: Annotated[int | None, typer.Option(help="the case's seed [default: random]")] = None,
    minutes: Annotated[float, typer.Option(help="how long the incident runs")] = 10.0,
    answer: Annotated[
        str | None,
        typer.Option("--answer", help="your answer: a scenario slug, healthy, or a condition"),
    ] = None,
    hint: Annotated[bool, typer.Option("--hint", help="a piece of evidence (-15 points)")] = False,
    report: Annotated[
        bool, typer.Option("--report", help="a report of the incident so far, blind")
    ] = False,
    reveal: Annotated[
        bool, typer.Option("--reveal", help="the last answered drill's case and evidence")
    ] = False,
    board: Annotated[bool, typer.Option("--board", help="the score board")] = False,
) -> None:
    """A hidden incident to diagnose as in production, then answered and scored."""
    from lab.drill import DrillBook

    book = DrillBook()
    if level not in ("easy", "hard"):
        raise LabError(f"--level {level!r}: choose easy or hard")
    if answer is not None:
        entry = book.answer(answer, err)
        verdict = "right" if entry["right"] else "wrong"
        err.print(
            f"{verdict}: {entry['points']} points ({entry['seconds']:.0f} s, "
            f"{entry['hints']} hints); see the case: lab drill --reveal"
        )
        print(book.board_path)
    elif hint:
        err.print(f"hint: {book.hint()}")
        print(book.current_path)
    elif report:
        html = book.report()
        err.print(f"report (blind): {html}")
        print(html)
    elif reveal:
        print(book.reveal())
    elif board:
        for row in book.board():
            print(
                f"{row['at']}  {row['points']:>3} points  {'right' if row['right'] else 'wrong'}"
                f"  {row['seconds']:>6.0f} s  {row['hints']} hints  seed {row['seed']}"
            )
        print(book.board_path)
    else:
        try:
            folder = book.start(level, seed, minutes, err)  # type: ignore[arg-type]
        except KeyboardInterrupt:
            err.print("interrupted: the drill's run was stopped; no drill is under way")
            raise typer.Exit(130) from None
        print(folder)


@app.command("up")
def up_cmd(
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="start this service and what it needs (repeatable)"),
    ] = None,
    rows: Annotated[int, typer.Option("--rows", help="products seeded in PostgreSQL")] = 1_000_000,
) -> None:
    """Start the native services (PostgreSQL, Redis, Toxiproxy, Prometheus, upstream)."""
    from lab.commands import services

    services.run_up(only, rows, err)


@app.command("down")
def down_cmd() -> None:
    """Stop every native service; no process or port of the lab is left."""
    from lab.commands import services

    services.run_down(err)


@app.command("status")
def status_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable")] = False,
) -> None:
    """Each service up or down, its port, version and health; the toxics installed."""
    from lab.commands import services

    services.run_status(as_json, err)


dashboard_app = typer.Typer(no_args_is_help=True, help="The Grafana dashboards, offline.")
app.add_typer(dashboard_app, name="dashboard")


@dashboard_app.command("snapshot")
def dashboard_snapshot_cmd(
    run_dir: Annotated[Path, typer.Argument(help="a run dir")],
    prometheus: Annotated[
        str | None,
        typer.Option("--prometheus", help="Prometheus URL (default: the lab's, see `make up`)"),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="PNG to write (default: RUN/plots/dashboard.png)")
    ] = None,
) -> None:
    """The overview dashboard over a run's load window, as one PNG; print its path last."""
    from lab import dashboard

    png = dashboard.snapshot(run_dir, prometheus or dashboard.default_prometheus_url(), out)
    err.print(f"dashboard snapshot: {png}")
    print(png)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        # Without standalone mode click returns an Exit's code instead of exiting.
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except LabError as exc:
        err.print(f"[red]error:[/] {exc}")
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("[yellow]interrupted")
        sys.exit(130)
    except Exception as exc:  # click's usage errors arrive here in standalone_mode=False
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
