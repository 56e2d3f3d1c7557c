"""Score, suppression, acknowledgements, exit codes and every output format (schema-validated / parsed)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

from schedgen_ops.errors import SchedgenError
from schedgen_ops.ops.readiness import Context, RenderedTree, evaluate, load_acks, record_ack, score
from schedgen_ops.ops.readiness.model import Check, Result
from schedgen_ops.ops.readiness.report import json_schema, render, to_junit, to_sarif
from tests.readiness.fixtures import REDIS_ACL, write_tree


def _result(status: str, severity: str = "danger") -> Result:
    check = Check("x", "x", "reliability", severity, "static", "why", "fix")  # type: ignore[arg-type]
    return Result(check, status, "m")  # type: ignore[arg-type]


def test_polaris_score() -> None:
    # 3 passes, 1 failed warning, 1 failed danger: 6 / (6 + 1 + 2)
    results = [
        _result("pass"),
        _result("pass"),
        _result("acknowledged", "warning"),
        _result("fail", "warning"),
        _result("error", "danger"),
        _result("skip"),
        _result("suppressed"),
    ]
    assert score(results) == round(100 * 6 / 9, 1)
    assert score([]) == 100.0
    assert score([_result("pending", "warning")]) == 0.0


@pytest.fixture
def good(tmp_path: Path) -> Context:
    root = write_tree(tmp_path / "good" / "tree")
    return Context(project=tmp_path / "good", tree=RenderedTree(root), profile="medium")


@pytest.fixture
def broken(tmp_path: Path) -> Context:
    root = write_tree(
        tmp_path / "broken" / "tree",
        files={"compose/redis/redis.conf": "maxmemory-policy allkeys-lru\n" + REDIS_ACL},
    )
    return Context(project=tmp_path / "broken", tree=RenderedTree(root), profile="medium")


def test_exit_codes(good: Context, broken: Context) -> None:
    assert evaluate(good).exit_code == 0
    assert evaluate(good, min_score=99.9).exit_code == 4  # pending manual items lower the score
    report = evaluate(broken)
    assert report.exit_code == 3
    assert [r.check.id for r in report.failed_dangers()] == ["queue-redis-durable"]


def test_suppression_needs_a_reason_and_is_reported(broken: Context) -> None:
    report = evaluate(broken, ignore={"queue-redis-durable": "cache-only Redis in this test"})
    result = next(r for r in report.results if r.check.id == "queue-redis-durable")
    assert (result.status, result.suppressed_reason) == ("suppressed", "cache-only Redis in this test")
    assert report.exit_code == 0
    with pytest.raises(SchedgenError, match="needs a reason"):
        evaluate(broken, ignore={"queue-redis-durable": " "})
    with pytest.raises(SchedgenError, match="unknown check") as info:
        evaluate(broken, ignore={"queue-redis-durabel": "typo"})
    assert "queue-redis-durable" in (info.value.hint or "")


def test_manual_ack_is_stored_with_date_and_counts_as_pass(good: Context) -> None:
    before = evaluate(good).score
    ack = record_ack(good.project, "manual-rollback-drill", "Thandi", "rolled back 1.4 -> 1.3 on prod, 2 min")
    stored = json.loads((good.project / ".schedgen/checklist-acks.json").read_text())
    assert stored["acks"]["manual-rollback-drill"]["by"] == "Thandi"
    assert ack.at.endswith("Z")
    report = evaluate(good, acks=load_acks(good.project))
    result = next(r for r in report.results if r.check.id == "manual-rollback-drill")
    assert result.status == "acknowledged" and result.acknowledgement == ack
    assert report.score > before
    with pytest.raises(SchedgenError, match="not acknowledged by hand"):
        record_ack(good.project, "queue-redis-durable", "x", "y")
    with pytest.raises(SchedgenError, match="unknown checklist item"):
        record_ack(good.project, "nope", "x", "y")


def test_json_validates_against_the_shipped_schema(broken: Context) -> None:
    report = evaluate(broken, ignore={"log-rotation": "journald on this host"})
    record_ack(broken.project, "manual-oncall-ready", "Sipho", "walked through the runbook")
    report = evaluate(broken, ignore={"log-rotation": "journald"}, acks=load_acks(broken.project))
    doc = json.loads(render(report, "json"))
    jsonschema.Draft202012Validator.check_schema(json_schema())
    jsonschema.validate(doc, json_schema(), format_checker=jsonschema.FormatChecker())
    assert doc["exit_code"] == 3 and doc["summary"]["suppressed"] == 1 and doc["summary"]["acknowledged"] == 1
    bad = dict(doc, exit_code=7)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, json_schema())


def test_junit_parses_with_failures_and_skips(broken: Context) -> None:
    report = evaluate(broken, ignore={"log-rotation": "journald"})
    root = ET.fromstring(to_junit(report).split("\n", 1)[1])
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert cases["queue-redis-durable"].find("failure") is not None
    assert cases["log-rotation"].find("skipped").get("message") == "journald"  # type: ignore[union-attr]
    assert cases["image-pinned"].find("failure") is None
    assert int(root.get("tests", "0")) == len(report.results)


def test_sarif_parses_and_locates_failures(broken: Context) -> None:
    doc = json.loads(to_sarif(evaluate(broken)))
    assert doc["version"] == "2.1.0"
    run = doc["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    errors = [r for r in run["results"] if r["level"] == "error"]
    assert {r["ruleId"] for r in errors} == {"queue-redis-durable"}  # policy and AOF findings
    assert (
        errors[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "compose/redis/redis.conf"
    )
    assert rules[errors[0]["ruleIndex"]]["id"] == "queue-redis-durable"


def test_markdown_groups_by_category(broken: Context) -> None:
    text = render(evaluate(broken), "markdown")
    assert "## Reliability" in text and "## Security" in text
    assert "| fail | `queue-redis-durable` | danger | static |" in text


def test_docs_list_every_check_with_its_kind_and_severity() -> None:
    from schedgen_ops.ops.readiness import all_checks

    doc = (Path(__file__).resolve().parents[2] / "docs" / "READINESS.md").read_text()
    for check in all_checks():
        assert f"| `{check.id}` | {check.kind} | {check.category} | {check.severity} |" in doc, check.id


def test_ack_and_list_from_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from schedgen_ops.cli.main import main

    base = ["--project", str(tmp_path), "checklist"]
    assert (
        main([*base, "ack", "manual-alert-delivery", "--by", "Lerato", "--note", "test page received"]) == 0
    )
    assert "acknowledged manual-alert-delivery by Lerato" in capsys.readouterr().out
    assert load_acks(tmp_path)["manual-alert-delivery"].note == "test page received"
    assert main([*base, "ack", "tls-redirect", "--by", "x", "--note", "y"]) == 1
    assert capsys.readouterr().err.startswith("error: tls-redirect is a static check")
    assert main([*base, "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {c["kind"] for c in listed} == {"static", "live", "manual"}
    assert main([*base, "--format", "yaml"]) == 2


def test_every_check_module_is_registered() -> None:
    """A new ``checks_*.py`` whose name is missing from CHECK_MODULES would silently never run."""
    from schedgen_ops.ops.readiness import registry

    on_disk = sorted(p.stem for p in Path(registry.__file__).parent.glob("checks_*.py"))
    assert list(registry.CHECK_MODULES) == on_disk
    assert all(registry.checks_of(m) for m in registry.check_modules())
