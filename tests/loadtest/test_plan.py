"""Pure parts of the load tests: scenario plans and shapes, thresholds, breaking point, spike recovery,
job completion, RSS parsing, target checks and the locust argv. Fast, no server."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from schedgen_ops.errors import SchedgenError
from schedgen_ops.ops.loadtest import analysis, rss, runner, target, thresholds
from schedgen_ops.ops.loadtest.analysis import Sample
from schedgen_ops.ops.loadtest.scenarios import SCENARIOS, Scenario, Stage, scale_scenario, stage_at, users_at

# --- scenarios and shapes -------------------------------------------------------------------------


def test_production_plan_stages() -> None:
    assert [(s.users, s.duration_s) for s in SCENARIOS["baseline"].stages] == [(10, 300)]
    assert [s.users for s in SCENARIOS["upload"].stages] == [10, 50, 100]
    assert SCENARIOS["status"].peak_users == 200 and SCENARIOS["status"].mix == {"status": 1}
    assert [s.users for s in SCENARIOS["stress"].stages if s.kind == "step"] == [100, 200, 500, 1000]
    assert [s.users for s in SCENARIOS["spike"].stages] == [10, 500, 10]
    assert SCENARIOS["soak"].duration_s == 7200 and SCENARIOS["soak"].peak_users == 50
    assert SCENARIOS["upload"].thresholds["upload_p95_ms"] == 5000
    assert SCENARIOS["upload"].thresholds["completion_rate"] == 0.95
    assert SCENARIOS["status"].thresholds["status_p95_ms"] == 200


def test_shape_follows_stages_then_stops() -> None:
    plan = SCENARIOS["upload"]
    assert users_at(plan, 0) == (10, 1.0)  # 10 users over a 10 s ramp
    assert users_at(plan, 119.9)[0] == 10  # type: ignore[index]
    assert users_at(plan, 120) == (50, 1.0)  # 40 users over 60 s, but never below 1 user/s
    assert users_at(plan, 300) == (100, 1.0)
    assert users_at(plan, plan.duration_s) is None
    stress = SCENARIOS["stress"]
    assert users_at(stress, 361) == (1000, pytest.approx(500 / 30, abs=1e-3))
    assert users_at(stress, 481) == (10, 100.0)  # recovery: drop fast (990/5 s, capped at 100/s)
    assert stage_at(stress, 481).kind == "recovery"  # type: ignore[union-attr]


def test_scaling_time_users_and_dependent_thresholds() -> None:
    tiny = scale_scenario(SCENARIOS["stress"], time_scale=0.01, users_scale=0.01)
    assert [s.users for s in tiny.stages] == [1, 2, 5, 10, 1]
    assert [s.duration_s for s in tiny.stages] == [1.2] * 5
    assert tiny.thresholds["sustained_users"] == 10  # scales with users
    assert tiny.thresholds["upload_p95_ms"] == 5000  # latency limits never scale
    spike = scale_scenario(SCENARIOS["spike"], time_scale=0.1)
    assert spike.thresholds["spike_recovery_s"] == pytest.approx(12)
    assert Scenario.from_dict(tiny.to_dict()) == tiny
    with pytest.raises(ValueError):
        scale_scenario(SCENARIOS["baseline"], time_scale=0)


# --- thresholds -------------------------------------------------------------------------------------


def test_parse_thresholds() -> None:
    assert thresholds.parse_threshold("upload_p95_ms=1") == ("upload_p95_ms", 1.0)
    assert thresholds.parse_threshold("error_rate=2%") == ("error_rate", 0.02)
    assert thresholds.parse_threshold("recovered=true") == ("recovered", 1.0)
    for bad in ("upload_p95_ms", "nope=1", "p95_ms=fast", "=3"):
        with pytest.raises(SchedgenError) as info:
            thresholds.parse_threshold(bad)
        assert info.value.exit_code == 2
    merged = thresholds.merge_thresholds(
        {"p95_ms": 2000, "error_rate": 0.01}, ["p95_ms=10", "rss_growth=0.2"]
    )
    assert merged == {"p95_ms": 10.0, "error_rate": 0.01, "rss_growth": 0.2}


def _summary(**overrides: object) -> dict:
    base = {
        "totals": {"p95_ms": 120.0, "error_rate": 0.005},
        "endpoints": [{"name": "upload", "p95_ms": 900.0}, {"name": "status", "p95_ms": 40.0}],
        "jobs": {"completion_rate": 0.97, "completion_ms": {"p95": 8000.0}},
        "stages": [],
        "sustained_users": None,
    }
    base.update(overrides)
    return base


def test_evaluate_run_thresholds_both_directions_and_missing_data() -> None:
    limits = {
        "p95_ms": 2000,
        "error_rate": 0.01,
        "upload_p95_ms": 500,
        "completion_rate": 0.95,
        "completion_p95_ms": 60000,
        "rss_growth": 0.1,
    }
    results = {r["name"]: r for r in thresholds.evaluate(_summary(), limits)}
    assert results["p95_ms"]["passed"] and results["error_rate"]["passed"]
    assert not results["upload_p95_ms"]["passed"] and results["upload_p95_ms"]["actual"] == 900.0
    assert results["completion_rate"]["passed"]  # >= direction
    assert results["rss_growth"]["actual"] is None and not results["rss_growth"]["passed"]  # no data fails
    assert not thresholds.verdict(list(results.values()))
    low = {r["name"]: r for r in thresholds.evaluate(_summary(jobs={"completion_rate": 0.9}), limits)}
    assert not low["completion_rate"]["passed"]


def test_stepped_run_judges_latency_per_step_and_gates_on_sustained_users() -> None:
    steps = [
        {
            "kind": "step",
            "users": 100,
            "p95_ms": 300.0,
            "upload_p95_ms": 900.0,
            "status_p95_ms": 50.0,
            "error_rate": 0.0,
        },
        {
            "kind": "step",
            "users": 200,
            "p95_ms": 800.0,
            "upload_p95_ms": 7000.0,
            "status_p95_ms": 90.0,
            "error_rate": 0.0,
        },
    ]
    summary = _summary(stages=steps, sustained_users=100, recovery={"passed": True})
    results = {
        r["name"]: r
        for r in thresholds.evaluate(summary, {"upload_p95_ms": 5000, "sustained_users": 200, "recovered": 1})
    }
    assert results["upload_p95_ms"]["scope"] == "step" and not results["upload_p95_ms"]["gate"]
    assert results["upload_p95_ms"]["actual"] == 7000.0 and not results["upload_p95_ms"]["passed"]
    assert not results["sustained_users"]["passed"] and results["recovered"]["passed"]
    relaxed = thresholds.evaluate(summary, {"upload_p95_ms": 5000, "sustained_users": 100, "recovered": 1})
    assert thresholds.verdict(relaxed)  # the step that broke is reported, the gate is the sustained target


# --- analysis ----------------------------------------------------------------------------------------


def test_percentile_nearest_rank() -> None:
    values = list(range(1, 101))
    assert analysis.percentile(values, 95) == 95
    assert analysis.percentile(values, 50) == 50
    assert analysis.percentile([7.0], 99) == 7.0
    assert analysis.percentile([], 95) is None


def _steady(
    start: float, end: float, ms: float, endpoint: str = "status", ok: bool = True, n: int = 20
) -> list[Sample]:
    step = (end - start) / n
    return [Sample(start + i * step, endpoint, ms, ok, 200 if ok else 500) for i in range(n)]


def test_breaking_point_is_first_step_crossing_and_recovery_is_checked() -> None:
    plan = Scenario(
        "stress",
        "",
        (
            Stage("s1", 10, 100, ramp_s=1, kind="step"),
            Stage("s2", 10, 200, ramp_s=1, kind="step"),
            Stage("s3", 10, 500, ramp_s=1, kind="step"),
            Stage("rec", 10, 10, ramp_s=1, kind="recovery"),
        ),
        {"status": 1},
        {"status_p95_ms": 1000, "error_rate": 0.02},
    )
    samples = (
        _steady(1, 10, 100)
        + _steady(11, 20, 400)
        + _steady(21, 30, 200, ok=False, n=5)  # errors break step 3 even with fast answers
        + _steady(21, 30, 200, n=15)
        + _steady(31, 40, 120)
        + [Sample(10.5, "status", 99999, True)]  # in s2's ramp: not judged
    )
    summary = analysis.summarize(plan, samples, {}, plan.thresholds, duration_s=40)
    point = summary["breaking_point"]
    assert point["stage"] == "s3" and point["users"] == 500 and point["crossed"] == ["error_rate"]
    assert summary["sustained_users"] == 200
    assert summary["recovery"]["passed"] is True
    slow_recovery = samples[:-21] + _steady(31, 40, 5000)
    again = analysis.summarize(plan, slow_recovery, {}, plan.thresholds, duration_s=40)
    assert again["recovery"]["passed"] is False and again["recovery"]["crossed"] == ["status_p95_ms"]


def test_no_breaking_point_when_every_step_holds() -> None:
    plan = Scenario(
        "stress", "", (Stage("s1", 5, 100, kind="step"), Stage("s2", 5, 200, kind="step")), {}, {}
    )
    summary = analysis.summarize(plan, _steady(0, 10, 50, n=40), {}, {"status_p95_ms": 1000}, duration_s=10)
    assert summary["breaking_point"] is None and summary["sustained_users"] == 200


def test_spike_recovery_time_is_when_latency_stays_back() -> None:
    plan = Scenario(
        "spike",
        "",
        (
            Stage("before", 10, 10, kind="before"),
            Stage("spike", 10, 500, kind="spike"),
            Stage("after", 36, 10, kind="after"),
        ),
        {},
        {},
    )
    # window = 36 / 18 = 2 s; baseline p95 100 ms -> limit 150 ms; slow until 8 s after the spike
    samples = (
        _steady(0, 10, 100, n=50)
        + _steady(10, 20, 3000)
        + _steady(20, 28, 900, n=40)
        + _steady(28, 56, 110, n=140)
    )
    spike = analysis.summarize(plan, samples, {}, {}, duration_s=56)["spike"]
    assert spike["baseline_p95_ms"] == 100 and spike["limit_ms"] == 150
    assert spike["recovery_s"] == pytest.approx(8.0)
    never = _steady(0, 10, 100, n=50) + _steady(10, 56, 3000, n=200)
    assert analysis.summarize(plan, never, {}, {}, duration_s=56)["spike"]["recovery_s"] is None


def test_job_completion_counts_and_times(tmp_path: Path) -> None:
    lines = [
        '{"event": "uploaded", "job_id": "a", "t": 1.0, "key": "k1"}',
        '{"event": "completed", "job_id": "a", "t": 3.0, "completion_ms": 2000.0}',
        '{"event": "uploaded", "job_id": "b", "t": 1.0, "key": "k2"}',
        '{"event": "failed", "job_id": "b", "t": 2.0, "completion_ms": 1000.0}',
        '{"event": "uploaded", "job_id": "c", "t": 1.0, "key": "k3"}',
        '{"event": "uploaded", "job_id": "d", "t": 1.0, "key": "k4"}',
        '{"event": "completed", "job_id": "d", "t": 5.0, "completion_ms": 4000.0}',
    ]
    path = tmp_path / "jobs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    stats = analysis.job_stats(analysis.read_jobs(path))
    assert (stats["uploaded"], stats["completed"], stats["failed"], stats["incomplete"]) == (4, 2, 1, 1)
    assert stats["completion_rate"] == 0.5
    assert stats["completion_ms"] == {"p50": 2000.0, "p95": 4000.0, "max": 4000.0}


def test_rss_parse_and_growth() -> None:
    text = (
        "# HELP process_resident_memory_bytes RSS\n# TYPE process_resident_memory_bytes gauge\n"
        'process_resident_memory_bytes{component="worker",pid="11"} 100.0\n'
        'process_resident_memory_bytes{component="worker",pid="12"} 50.0\n'
        'process_resident_memory_bytes{component="api",pid="9"} 200.0\n'
        "# HELP other_total x\n# TYPE other_total counter\nother_total 3.0\n"
    )
    assert rss.parse_rss(text, "api") == {"api[component=worker]": 150.0, "api[component=api]": 200.0}
    samples = [
        {"t_s": 0, "values": {"api": 500.0}},  # before warm-up: ignored
        {"t_s": 20, "values": {"api": 100.0, "worker": 200.0}},
        {"t_s": 60, "values": {"api": 105.0, "worker": 260.0}},
    ]
    stats = analysis.rss_stats(samples, warmup_s=10)
    assert stats is not None
    assert stats["growth"] == {"api": 0.05, "worker": 0.3} and stats["max_growth"] == 0.3


# --- target and argv ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000", "http://localhost:1/", "http://[::1]:80", "http://127.0.0.2"]
)
def test_loopback_urls_accepted(url: str) -> None:
    assert target.check_url(url).startswith("http")


@pytest.mark.parametrize(
    "url", ["http://10.0.0.5:8000", "https://example.com", "http://0.0.0.0:80", "ftp://127.0.0.1"]
)
def test_other_hosts_refused(url: str) -> None:
    with pytest.raises(SchedgenError) as info:
        target.check_url(url)
    assert info.value.exit_code == 2


def test_uploads_per_key_stays_under_the_limit() -> None:
    assert target.uploads_per_key("10/hour") == 9
    assert target.uploads_per_key("1/minute") == 1


def test_locust_argv() -> None:
    argv = runner.locust_argv(
        python="/py",
        locustfile=Path("/lt/locustfile.py"),
        host="http://127.0.0.1:8000",
        report_dir=Path("/r"),
        mix={"upload": 6, "status": 3, "health": 1},
    )
    assert argv == [
        "/py", "-m", "locust", "-f", "/lt/locustfile.py", "--headless", "--host", "http://127.0.0.1:8000",
        "--csv", "/r/locust", "--html", "/r/locust.html", "--stop-timeout", "5", "--exit-code-on-error", "0",
        "--loglevel", "WARNING", "--logfile", "/r/locust.log", "--only-summary",
        "HealthUser", "StatusUser", "UploadUser",
    ]  # fmt: skip


def test_locustfile_ships_with_the_package_data() -> None:
    assert runner.locustfile().name == "locustfile.py"
    assert runner.locustfile().parent.name == "loadtests"


def test_completion_ends_at_the_services_finished_at() -> None:
    from schedgen_ops.ops.loadtest.client import _finished_at

    assert _finished_at({"finished_at": "2026-11-28T13:28:41.832544Z"}) == pytest.approx(1795872521.832544)
    before = time.time()
    assert _finished_at({"finished_at": None}) >= before  # not reported: the poll that saw it
    assert _finished_at({"finished_at": "garbage"}) >= before


def test_keys_cover_every_session_the_plan_can_run() -> None:
    from schedgen_ops.ops.loadtest.scenarios import expected_sessions

    # the full-length baseline ran 492 upload sessions (docs/PERFORMANCE.md); one key per 9 uploads
    assert expected_sessions(SCENARIOS["baseline"]) >= 10 * 0.6 * 300 / 1.5
    assert expected_sessions(SCENARIOS["status"]) == 0  # status users only poll: one key each
