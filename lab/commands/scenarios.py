"""`lab scenarios [SLUG] [--json]`: the catalogue, or one scenario's page."""

from __future__ import annotations

import difflib
import inspect
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markdown import Markdown
from rich.table import Table

import faults
from lab.errors import LabError

__all__ = ["catalogue", "page_markdown", "run", "variant_diff", "write_handbook"]


def catalogue() -> list[dict[str, Any]]:
    return [
        {"slug": s.slug, "title": s.title, "seeds": list(s.seeds), "kind": s.kind,
         "requires": list(s.requires)}
        for s in faults.all_scenarios()
    ]  # fmt: skip


def page_markdown(slug: str) -> str:
    try:
        s = faults.get(slug)
    except faults.UnknownScenario as exc:
        raise LabError(str(exc)) from None
    sym = s.symptom
    params = (
        "\n".join(
            f"- `{name}`: {spec.get('description', '')} (default `{spec.get('default')}`)"
            for name, spec in s.params.model_json_schema().get("properties", {}).items()
        )
        or "- none"
    )
    needs = ", ".join(s.requires) or "nothing"
    # A deployment's variants are how the app starts: nothing to switch at run time.
    toggle = "" if s.kind == "deployment" else f", or `PUT /_lab/faults/{s.slug}`"
    return f"""# {s.slug}: {s.title}

Seed questions: {", ".join(map(str, s.seeds))} - kind: {s.kind} - needs: {needs}

{s.summary}

## Reproduce

```
make fault={s.slug} load            # faulty variant under load, report at the end
make fault={s.slug} fixed=1 load    # the fix, same load
make fault={s.slug} compare         # both, and a before/after report
```

Symptom: `{sym.metric} {sym.op} {sym.threshold:g}` - {sym.description}.

Parameters (`lab run {s.slug} --param name=value`{toggle}):
{params}

## The fix, as a diff of the two variants

```diff
{variant_diff(s)}
```

## Diagnosis

{s.diagnosis}
"""


def variant_diff(scenario: faults.Scenario[Any, Any]) -> str:
    """The faulty implementation against the fixed one, as the scenario module has them."""
    try:
        faulty = inspect.getsource(scenario.faulty).splitlines()
        fixed = inspect.getsource(scenario.fixed).splitlines()
    except (OSError, TypeError):
        return "(source not available)"
    diff = difflib.unified_diff(
        faulty, fixed, f"faulty: {scenario.faulty.__name__}", f"fixed: {scenario.fixed.__name__}",
        lineterm="", n=2,
    )  # fmt: skip
    return "\n".join(diff)


def write_handbook(out: Path) -> list[Path]:
    """Every scenario's page as docs/scenarios/<slug>.md, and an index."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for scenario in faults.all_scenarios():
        path = out / f"{scenario.slug}.md"
        path.write_text(page_markdown(scenario.slug))
        written.append(path)
    index = [
        "# Scenario handbook",
        "",
        "| slug | seeds | kind | needs | title |",
        "|---|---|---|---|---|",
    ]
    index += [
        f"| [{s.slug}]({s.slug}.md) | {', '.join(map(str, s.seeds))} | {s.kind} "
        f"| {', '.join(s.requires) or '-'} | {s.title} |"
        for s in faults.all_scenarios()
    ]
    (out / "README.md").write_text("\n".join(index) + "\n")
    return [out / "README.md", *written]


def run(slug: str | None = None, as_json: bool = False, console: Console | None = None) -> str:
    console = console or Console()
    if slug:
        text = page_markdown(slug)
        if as_json:
            text = json.dumps(faults.get(slug).describe(), indent=2)
            print(text)
        else:
            console.print(Markdown(text))
        return text
    data = catalogue()
    if as_json:
        text = json.dumps(data, indent=2)
        print(text)
        return text
    table = Table(title="Lab scenarios")
    for column in ("slug", "kind", "seeds", "needs", "title"):
        table.add_column(column)
    for item in data:
        table.add_row(item["slug"], item["kind"], ", ".join(map(str, item["seeds"])),
                      ", ".join(item["requires"]) or "-", item["title"])  # fmt: skip
    console.print(table)
    covered = sorted({n for item in data for n in item["seeds"]})
    console.print(f"{len(data)} scenarios covering {len(covered)}/50 seed questions")
    return ""
