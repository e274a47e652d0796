"""heavy-json step by step (lab/bench/heavy_json_steps.py): every step sends the same rows."""

from __future__ import annotations

import orjson
import pytest

from faults.heavy_json import export_rows
from lab.bench.heavy_json_steps import STEPS, markdown, measure, rows_digest, run_step

pytestmark = pytest.mark.unit

ROWS = 300


def expected_digest(rows: int) -> str:
    # What a client decodes: the generator's rows as JSON (Decimal totals as strings).
    return rows_digest(orjson.loads(orjson.dumps(row, default=str)) for row in export_rows(rows))


@pytest.mark.parametrize("step", list(STEPS))
def test_each_step_sends_the_generators_rows(step: str) -> None:
    numbers = run_step(step, ROWS)
    assert numbers.rows == ROWS
    assert numbers.rows_sha256 == expected_digest(ROWS)
    assert 0 < numbers.first_byte_s <= numbers.last_byte_s
    streamed = step.startswith("ndjson")
    assert numbers.content_type.startswith(
        "application/x-ndjson" if streamed else "application/json"
    )
    if step == "ndjson_gzip":
        assert numbers.content_encoding == "gzip"
        assert numbers.wire_bytes < numbers.body_bytes / 5  # repetitive rows compress ~10x
    else:
        assert numbers.content_encoding is None
        assert numbers.wire_bytes == numbers.body_bytes


def test_the_steps_differ_in_encoding_not_in_rows() -> None:
    first = run_step("validated_json", ROWS)
    last = run_step("ndjson_gzip", ROWS)
    assert first.rows_sha256 == last.rows_sha256
    assert first.body_bytes != last.body_bytes  # one JSON array vs NDJSON lines


def test_measure_runs_each_step_in_its_own_process_and_tabulates_them() -> None:
    results = measure(rows=200, steps=("validated_json", "ndjson_gzip"))
    assert [r.step for r in results] == ["validated_json", "ndjson_gzip"]
    assert {r.rows for r in results} == {200}
    table = markdown(results)
    assert sum(line.startswith("| validated_json ") for line in table) == 1
    assert sum(line.startswith("| ndjson_gzip ") for line in table) == 1


def test_an_unknown_step_names_the_steps() -> None:
    with pytest.raises(ValueError, match="validated_json"):
        run_step("ujson", ROWS)
