"""The six load-test scenarios as data: stages from the production plan, scaled by time and users.

Pure (no locust, no I/O): the locustfile's load shape asks `users_at` what to run, the analysis uses
the same stage windows to compute per-stage figures, and the tests check both without a server.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

#: Simulated user kinds the locustfile defines (class names there are derived from these).
USER_KINDS = ("upload", "status", "health")

#: Request names the locustfile reports (locust's HTML/CSV) -> short endpoint names in the summary.
ENDPOINTS = {
    "POST /api/uploads": "upload",
    "GET /api/jobs/[id]": "status",
    "GET /api/jobs/[id]/events": "events",
    "GET /api/jobs/[id]/calendar.ics": "calendar",
    "GET /healthz": "health",
}


@dataclass(frozen=True)
class Stage:
    """Hold ``users`` for ``duration_s`` after ramping to them from the previous level over ``ramp_s``.

    ``kind`` tells the analysis what the stage is for: "load" (plain), "step" (a stress step that may
    break), "before"/"spike"/"after" (spike) and "recovery" (stress: load dropped, must recover).
    """

    name: str
    duration_s: float
    users: int
    ramp_s: float = 0.0
    kind: str = "load"


@dataclass(frozen=True)
class Scenario:
    """A named plan: stages, which users run (kind -> weight) and its default thresholds."""

    name: str
    description: str
    stages: tuple[Stage, ...]
    mix: dict[str, int]
    thresholds: dict[str, float]
    think_s: tuple[float, float] = (1.0, 5.0)
    samples_rss: bool = False

    @property
    def duration_s(self) -> float:
        return sum(stage.duration_s for stage in self.stages)

    @property
    def peak_users(self) -> int:
        return max(stage.users for stage in self.stages)

    def windows(self) -> list[tuple[Stage, float, float]]:
        """Each stage with its start and end time (seconds from the start of the run)."""
        out: list[tuple[Stage, float, float]] = []
        start = 0.0
        for stage in self.stages:
            out.append((stage, start, start + stage.duration_s))
            start += stage.duration_s
        return out

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["stages"] = [asdict(stage) for stage in self.stages]
        data["think_s"] = list(self.think_s)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scenario:
        return cls(
            name=data["name"],
            description=data["description"],
            stages=tuple(Stage(**stage) for stage in data["stages"]),
            mix=dict(data["mix"]),
            thresholds=dict(data["thresholds"]),
            think_s=(float(data["think_s"][0]), float(data["think_s"][1])),
            samples_rss=bool(data.get("samples_rss", False)),
        )


_FULL_MIX = {"upload": 6, "status": 3, "health": 1}

#: Each scenario once; `SCENARIOS` looks them up by their own name.
_SCENARIOS = (
    Scenario(
        name="baseline",
        description="10 users for 5 minutes: the normal day the other scenarios are compared with.",
        stages=(Stage("steady", 300, 10, ramp_s=10),),
        mix=dict(_FULL_MIX),
        thresholds={"p95_ms": 2000, "error_rate": 0.01},
    ),
    Scenario(
        name="upload",
        description="Students uploading timetables, ramping 10 -> 50 -> 100 users.",
        stages=(
            Stage("10 users", 120, 10, ramp_s=10),
            Stage("50 users", 180, 50, ramp_s=60),
            Stage("100 users", 240, 100, ramp_s=60),
        ),
        mix={"upload": 1},
        thresholds={
            "upload_p95_ms": 5000,
            "status_p95_ms": 1000,
            "completion_rate": 0.95,
            "completion_p95_ms": 60000,
            "error_rate": 0.02,
        },
    ),
    Scenario(
        name="status",
        description="Ramp to 200 users polling job status.",
        stages=(Stage("ramp", 60, 100, ramp_s=60), Stage("200 users", 240, 200, ramp_s=60)),
        mix={"status": 1},
        thresholds={"status_p95_ms": 200, "error_rate": 0.01},
        think_s=(0.5, 1.5),
    ),
    Scenario(
        name="stress",
        description="Steps of 100/200/500/1000 users until p95 or the error rate crosses its threshold, "
        "then 10 users to check the service recovers.",
        stages=(
            Stage("100 users", 120, 100, ramp_s=20, kind="step"),
            Stage("200 users", 120, 200, ramp_s=20, kind="step"),
            Stage("500 users", 120, 500, ramp_s=30, kind="step"),
            Stage("1000 users", 120, 1000, ramp_s=30, kind="step"),
            Stage("recovery", 120, 10, ramp_s=5, kind="recovery"),
        ),
        mix=dict(_FULL_MIX),
        thresholds={
            "upload_p95_ms": 5000,
            "status_p95_ms": 1000,
            "error_rate": 0.02,
            "sustained_users": 1000,
            "recovered": 1,
        },
    ),
    Scenario(
        name="spike",
        description="10 -> 500 -> 10 users; latency must be back to the pre-spike level within 2 minutes.",
        stages=(
            Stage("before", 60, 10, ramp_s=5, kind="before"),
            Stage("spike", 60, 500, ramp_s=5, kind="spike"),
            Stage("after", 180, 10, ramp_s=5, kind="after"),
        ),
        mix=dict(_FULL_MIX),
        thresholds={"spike_recovery_s": 120},
    ),
    Scenario(
        name="soak",
        description="50 users for 2 hours; api and worker memory (RSS from /metrics) must not grow > 10%.",
        stages=(Stage("steady", 7200, 50, ramp_s=30),),
        mix=dict(_FULL_MIX),
        thresholds={"rss_growth": 0.10, "error_rate": 0.02, "p95_ms": 2000},
        samples_rss=True,
    ),
)
SCENARIOS: dict[str, Scenario] = {scenario.name: scenario for scenario in _SCENARIOS}


@dataclass(frozen=True)
class ThresholdSpec:
    """What a threshold name means: the summary metric it reads and which side passes."""

    name: str
    metric: str
    op: str  # "<" (value must stay below the limit) or ">=" (must reach it)
    unit: str
    description: str
    scales_with: str = ""  # "users" or "time": the default limit scales with --users-scale/--time-scale
    per_step: bool = field(default=False)


THRESHOLDS: dict[str, ThresholdSpec] = {
    spec.name: spec
    for spec in (
        ThresholdSpec("p95_ms", "totals.p95_ms", "<", "ms", "p95 latency of all requests"),
        ThresholdSpec("error_rate", "totals.error_rate", "<", "ratio", "failed requests / all requests"),
        ThresholdSpec("upload_p95_ms", "endpoints.upload.p95_ms", "<", "ms", "p95 latency of uploads"),
        ThresholdSpec("status_p95_ms", "endpoints.status.p95_ms", "<", "ms", "p95 latency of job status"),
        ThresholdSpec(
            "completion_rate", "jobs.completion_rate", ">=", "ratio", "uploaded jobs that completed"
        ),
        ThresholdSpec(
            "completion_p95_ms", "jobs.completion_ms.p95", "<", "ms", "p95 time from upload to completed"
        ),
        ThresholdSpec(
            "sustained_users",
            "sustained_users",
            ">=",
            "users",
            "largest stress step passed before the breaking point",
            scales_with="users",
        ),
        ThresholdSpec(
            "recovered", "recovery.passed", ">=", "bool", "service recovered after the load dropped"
        ),
        ThresholdSpec(
            "spike_recovery_s",
            "spike.recovery_s",
            "<",
            "s",
            "time after the spike until latency is back to the pre-spike level",
            scales_with="time",
        ),
        ThresholdSpec("rss_growth", "rss.max_growth", "<", "ratio", "largest RSS growth of api or workers"),
    )
}

#: Thresholds that stress evaluates per step to find the breaking point (not over the whole run).
STEP_THRESHOLDS = ("upload_p95_ms", "status_p95_ms", "error_rate", "p95_ms")


def scale_scenario(scenario: Scenario, *, time_scale: float = 1.0, users_scale: float = 1.0) -> Scenario:
    """The scenario with every duration times ``time_scale`` and every user count times ``users_scale``.

    User counts round up and stay >= 1, so a tiny run still exercises every stage; limits of thresholds
    that depend on users or time scale with them (breaking point targets, recovery windows).
    """
    if time_scale <= 0 or users_scale <= 0:
        raise ValueError("time and users scales must be positive")
    stages = tuple(
        Stage(
            name=stage.name,
            duration_s=round(stage.duration_s * time_scale, 3),
            users=scale_users(stage.users, users_scale),
            ramp_s=round(stage.ramp_s * time_scale, 3),
            kind=stage.kind,
        )
        for stage in scenario.stages
    )
    thresholds = {}
    for name, limit in scenario.thresholds.items():
        spec = THRESHOLDS[name]
        if spec.scales_with == "users":
            limit = scale_users(int(limit), users_scale)
        elif spec.scales_with == "time":
            limit = round(limit * time_scale, 3)
        thresholds[name] = limit
    return Scenario(
        name=scenario.name,
        description=scenario.description,
        stages=stages,
        mix=dict(scenario.mix),
        thresholds=thresholds,
        think_s=scenario.think_s,
        samples_rss=scenario.samples_rss,
    )


def scale_users(users: int, users_scale: float) -> int:
    """``users`` scaled, rounded up, at least one."""
    return max(1, math.ceil(users * users_scale - 1e-9))


#: locust warns that faster spawning (or stopping) is unreliable.
MAX_SPAWN_RATE = 100.0


def users_at(scenario: Scenario, t: float) -> tuple[int, float] | None:
    """(target users, spawn rate) at ``t`` seconds into the run; None once the last stage is over.

    The spawn rate makes locust reach a stage's level in its ``ramp_s`` (at least one user per
    second; an instant stage uses the whole jump per second), capped at `MAX_SPAWN_RATE`.
    """
    previous = 0
    for stage, start, end in scenario.windows():
        if start <= t < end:
            delta = abs(stage.users - previous)
            rate = delta / stage.ramp_s if stage.ramp_s > 0 else float(max(delta, 1))
            return stage.users, min(MAX_SPAWN_RATE, max(1.0, round(rate, 3)))
        previous = stage.users
    return None


def stage_at(scenario: Scenario, t: float) -> Stage | None:
    """The stage running at ``t`` seconds (None after the end)."""
    for stage, start, end in scenario.windows():
        if start <= t < end:
            return stage
    return None


def expected_sessions(scenario: Scenario, *, overhead_s: float = 0.5) -> int:
    """Upper estimate of upload sessions in a run (API keys are sized from it).

    A session is at least the shortest think time plus ``overhead_s`` (upload, a poll, two fetches on
    an idle service), and only the upload share of the users runs sessions.
    """
    if "upload" not in scenario.mix:
        return 0
    share = scenario.mix["upload"] / sum(scenario.mix.values())
    shortest = scenario.think_s[0] + overhead_s
    total = 0.0
    for stage in scenario.stages:
        total += stage.users * share * (stage.duration_s / shortest + 1)
    return math.ceil(total)
