"""reports/formats.py: old run dirs still rebuild, unknown formats fail with one sentence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reports import ReportError, UnusableRunDir, build_report, compare
from reports.formats import RUN_DIR_FORMAT, SummaryFile
from reports.summary import load_or_build_summary
from tests.unit.test_report_build import make_run

pytestmark = pytest.mark.unit

# summary.json as the lab wrote it before `format` existed (format 1): another key
# order, and a number that a rebuild must replace.
FORMAT_1_SUMMARY = {"run_id": "leak", "requests": 1, "rss_slope_mb_per_10k_requests": 99.0}


@pytest.fixture
def old_run(tmp_path: Path) -> Path:
    """A run dir of before the formats: neither meta.json nor summary.json has `format`."""
    run = make_run(tmp_path, "leak", slope_mb_per_10k=20.0, variant="faulty")
    assert "format" not in json.loads((run / "meta.json").read_text())
    (run / "summary.json").write_text(json.dumps(FORMAT_1_SUMMARY))
    return run


def _set_format(run: Path, name: str, value: object) -> None:
    data = json.loads((run / name).read_text())
    data["format"] = value
    (run / name).write_text(json.dumps(data))


def _summary_json(run: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads((run / "summary.json").read_text())
    return data


def test_a_run_dir_without_formats_rebuilds(old_run: Path) -> None:
    html = build_report(old_run)
    assert html.is_file()
    summary = _summary_json(old_run)
    assert next(iter(summary)) == "format" and summary["format"] == SummaryFile.FORMAT
    assert summary["requests"] == 6000
    assert summary["rss_slope_mb_per_10k_requests"] == pytest.approx(20.0, rel=0.02)


def test_an_older_summary_is_computed_again_not_trusted(old_run: Path) -> None:
    summary = load_or_build_summary(old_run)
    assert summary["requests"] == 6000
    assert "format" not in summary  # the file's, not the run's
    assert _summary_json(old_run)["format"] == SummaryFile.FORMAT  # written back


def test_a_summary_in_this_format_is_read_back(old_run: Path) -> None:
    SummaryFile(old_run).write(FORMAT_1_SUMMARY)
    assert load_or_build_summary(old_run) == FORMAT_1_SUMMARY


@pytest.mark.parametrize("found", [SummaryFile.FORMAT + 1, "2", None])
def test_a_summary_of_another_format_is_computed_again(old_run: Path, found: object) -> None:
    _set_format(old_run, "summary.json", found)
    assert load_or_build_summary(old_run)["requests"] == 6000


def test_meta_json_of_this_format_is_read(old_run: Path) -> None:
    _set_format(old_run, "meta.json", RUN_DIR_FORMAT)
    assert build_report(old_run).is_file()


def _one_sentence(exc: pytest.ExceptionInfo[UnusableRunDir]) -> str:
    message = str(exc.value)
    assert isinstance(exc.value, ReportError)
    assert "\n" not in message and message.count("; ") == 1, message
    return message


def test_a_run_dir_of_a_future_format_fails_with_one_sentence(
    old_run: Path, tmp_path: Path
) -> None:
    _set_format(old_run, "meta.json", 99)
    with pytest.raises(UnusableRunDir) as exc:
        build_report(old_run)
    message = _one_sentence(exc)
    assert "format 99" in message and "update the lab" in message
    assert _summary_json(old_run) == FORMAT_1_SUMMARY  # nothing written
    flat = make_run(tmp_path, "flat", slope_mb_per_10k=0.0, variant="fixed")
    with pytest.raises(UnusableRunDir, match="format 99"):
        compare(flat, old_run, tmp_path / "cmp")
    with pytest.raises(UnusableRunDir, match="format 99"):
        load_or_build_summary(old_run)


@pytest.mark.parametrize("found", ["2", 0, True, 1.0])
def test_a_format_that_is_no_known_number_fails(old_run: Path, found: object) -> None:
    _set_format(old_run, "meta.json", found)
    with pytest.raises(UnusableRunDir) as exc:
        build_report(old_run)
    assert f"format {found!r}" in _one_sentence(exc)


def test_a_folder_without_meta_json_fails_with_one_sentence(old_run: Path) -> None:
    (old_run / "meta.json").unlink()
    with pytest.raises(UnusableRunDir) as exc:
        build_report(old_run)
    assert "no meta.json" in _one_sentence(exc)
    (old_run / "meta.json").write_text('{"run_id": "le')  # torn
    with pytest.raises(UnusableRunDir) as exc:
        build_report(old_run)
    assert "format is unknown" in _one_sentence(exc)
