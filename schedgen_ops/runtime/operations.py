"""What `up`, `deploy`, `rollback`, `scale`, `status` and `down` do, for every runtime.

Each changing operation holds the deploy lock and leaves one audit entry (besides the runner's entry per
command; `runtime/verb.py` does both). `up` and `deploy` share one path, `roll_out`: render and validate
into a staging directory, record a pending release (up reuses the current one when the tree is the
same), apply it through the runtime and pass the health gate before the release becomes current. If a
deploy's gate fails it keeps or puts the previous release back (configuration and processes only: data
is never restored by a deploy) and fails.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from schedgen_ops.config import Config, load_config, load_secrets
from schedgen_ops.config.project import init_project, is_project
from schedgen_ops.config.secrets import secrets_path
from schedgen_ops.errors import SchedgenError
from schedgen_ops.layout import SECRETS_FILE, ProjectLayout
from schedgen_ops.runtime import argv as A
from schedgen_ops.runtime.base import SCALABLE_SERVICES, NotSwitched, Runtime, StackStatus
from schedgen_ops.runtime.compose import ComposeRuntime
from schedgen_ops.runtime.gate import GateFailure, GateReport
from schedgen_ops.runtime.kubernetes import KubernetesRuntime
from schedgen_ops.runtime.local import LocalRuntime
from schedgen_ops.runtime.releases import Release, tree_digest
from schedgen_ops.runtime.scale_store import ScaleStore
from schedgen_ops.runtime.verb import Operation, Ops, failure_text, operation
from schedgen_ops.targets import check_target

MIN_FREE_BYTES = 200 * 1024 * 1024
#: Each gate check's minimum patience when putting the previous (known-good) release back.
ROLLBACK_GATE_S = 120.0


def load(ops: Ops, profile: str | None = None, overrides: list[str] | None = None) -> Config:
    """The project's validated config; an empty directory becomes a project (like `render` does)."""
    if not is_project(ops.project) or not secrets_path(ops.project).exists():
        if ops.dry_run:
            raise SchedgenError(
                f"no project in {ops.project}", code="no_project", hint="run `schedgen init` first"
            )
        fresh = not is_project(ops.project)
        init_project(ops.project, profile=profile if fresh else None)
        made = f"schedgen.yaml, {SECRETS_FILE}" if fresh else str(SECRETS_FILE)
        ops.echo(f"initialised the project in {ops.project} ({made})")
    return load_config(ops.project, profile=profile, overrides=overrides)


def runtime_for(ops: Ops, target: str, config: Config | None = None, tree: Path | None = None) -> Runtime:
    """The runtime object of ``target`` (compose/kubernetes need the config for names and bounds)."""
    if target == "local":
        return LocalRuntime(ops.project, ops.runner)
    config = config or load_config(ops.project)
    if target == "compose":
        desired = {"api": config.api.replicas, "pdf-worker": config.worker.replicas}
        desired.update(saved_scale(ops))

        def build_missing(tag: str) -> None:
            from schedgen_ops.render.pitr import is_pitr_image
            from schedgen_ops.runtime.imagebuild import build_image, build_pitr_postgres

            if is_pitr_image(tag):  # backup.pitr: the postgres image with pgBackRest
                build_pitr_postgres(ops.runner, config, tag=tag, progress=ops.echo)
                return
            build_image(ops.runner, tag=tag, progress=ops.echo)

        return ComposeRuntime(
            config.name,
            ops.runner,
            tree=tree,
            desired=desired,
            service_image=config.service_image(),
            api_port=config.ports.api,
            build_missing=build_missing,
        )
    return KubernetesRuntime(
        A.KubeTarget(config.kubernetes.namespace),
        ops.runner,
        tree=tree,
        bounds={
            "api": (config.api.min_replicas, config.api.max_replicas),
            "pdf-worker": (config.worker.min_replicas, config.worker.max_replicas),
        },
    )


def saved_scale(ops: Ops) -> dict[str, int]:
    """Replica counts set with `schedgen scale` (.schedgen/scale.json), which outlive a deploy."""
    return {k: v for k, v in ScaleStore(ops.state).read().items() if k in SCALABLE_SERVICES}


def save_scale(ops: Ops, counts: Mapping[str, int]) -> None:
    ScaleStore(ops.state).save(counts)


def current_target(ops: Ops) -> str:
    current = ops.releases.current()
    return current.target if current else "local"


def stage(ops: Ops, config: Config, target: str) -> Path:
    """Render and validate ``target`` into a fresh staging directory (pre-flight)."""
    from schedgen_ops.render import render_tree, validate_tree

    staging = ProjectLayout.of(ops.project).staging
    shutil.rmtree(staging, ignore_errors=True)
    render_tree(config, load_secrets(ops.project), target, staging, project_dir=ops.project)
    problems = validate_tree(staging)
    if problems:
        raise SchedgenError(
            f"the rendered {target} tree is invalid: {problems[0]}",
            code="render_invalid",
            hint=f"fix the configuration and deploy again (`schedgen render --target {target}` lists all)",
        )
    free = shutil.disk_usage(ops.state).free
    if free < MIN_FREE_BYTES:
        raise SchedgenError(
            f"only {free // 2**20} MiB free under {ops.state}", code="low_disk", hint="free at least 200 MiB"
        )
    return staging


def apply_gated(
    ops: Ops, runtime: Runtime, tree: Path, *, canary: bool, rollback: bool = False
) -> GateReport | None:
    """Deploy ``tree`` and pass the gate the runtime's own way (`Runtime.deploy_gated`); a dry run plans
    `Runtime.deploy`/`rollback` followed by the gate, so it prints every command either would run."""
    if not ops.dry_run:
        return runtime.deploy_gated(tree, canary=canary, timeout_s=ops.gate_timeout_s, echo=ops.echo)
    (runtime.rollback if rollback else runtime.deploy)(tree)
    return gate(ops, runtime, tree, canary=canary)


def gate(
    ops: Ops, runtime: Runtime, tree: Path, *, canary: bool, timeout_s: float | None = None
) -> GateReport | None:
    """The health gate of the runtime that was just changed (each runtime knows how to reach its api)."""
    report = runtime.gate(tree, canary=canary, timeout_s=timeout_s or ops.gate_timeout_s, echo=ops.echo)
    return None if ops.dry_run else report


@dataclass
class DeployOutcome:
    release: Release | None
    previous: str | None
    gate: GateReport | None
    rolled_back_to: str | None = None
    failure: str | None = None
    unchanged: bool = False
    planned: list[list[str]] = field(default_factory=list)


@dataclass(frozen=True)
class Rollout:
    """What `up` and `deploy` really differ in; `roll_out` does everything else the same way for both.
    The defaults are deploy's; `up` names each way it differs."""

    action: str
    target: str
    canary: bool = True
    #: up: a tree identical to the current release's is not a new release (nothing restarts).
    reuse_unchanged: bool = False
    #: deploy: stage beside the serving release and gate before traffic moves (`Runtime.deploy_gated`),
    #: then on failure keep or put back the previous release; up: converge in place (`Runtime.up`),
    #: gate, and on failure only report that the stack did not come up.
    staged: bool = True
    #: deploy: put the previous release back when the gate fails (unless --no-rollback).
    rollback_on_failure: bool = True
    #: deploy: echo the plan or the new release, and audit a dry run; up leaves the reporting to its
    #: caller (a dry run of up is audited only through the runner's command entries).
    announce: bool = True

    def ok_fields(self, release_id: str, unchanged: bool) -> dict[str, Any]:
        """The success audit entry's fields (each verb keeps the entry it always wrote)."""
        if self.reuse_unchanged:
            return {"release": release_id, "unchanged": unchanged}
        return {"target": self.target}


def deploy(
    ops: Ops,
    *,
    target: str = "local",
    profile: str | None = None,
    overrides: list[str] | None = None,
    rollback_on_failure: bool = True,
    canary: bool = True,
    action: str = "deploy",
) -> DeployOutcome:
    """Pre-flight, apply, gate, record; roll back to the previous release when the gate fails."""
    check_target(target)
    rollout = Rollout(action, target, canary=canary, rollback_on_failure=rollback_on_failure)
    return roll_out(ops, rollout, profile, overrides)


def up(ops: Ops, *, profile: str | None = None, overrides: list[str] | None = None) -> DeployOutcome:
    """Local: render if the config changed, start or converge, wait for readiness and a worker heartbeat."""
    rollout = Rollout(
        "up",
        "local",
        canary=False,
        reuse_unchanged=True,
        staged=False,
        rollback_on_failure=False,
        announce=False,
    )
    return roll_out(ops, rollout, profile, overrides)


def roll_out(
    ops: Ops, rollout: Rollout, profile: str | None = None, overrides: list[str] | None = None
) -> DeployOutcome:
    """The one path of a release: stage the tree, tell whether it changed, record it, apply it through
    the runtime, gate it, make it current and audit; a failure is reported the verb's own way."""
    started = time.monotonic()
    config = load(ops, profile, overrides)
    target = rollout.target
    with operation(ops, rollout.action, started=started) as op:
        staging = stage(ops, config, target)
        previous = ops.releases.current()
        previous_id = previous.id if previous else None
        unchanged = (
            rollout.reuse_unchanged
            and previous is not None
            and previous.target == target
            and previous.tree_digest == tree_digest(staging)
        )
        release: Release | None = previous if unchanged else None
        if not unchanged and not ops.dry_run:
            release = ops.releases.create(
                staging, target=target, profile=config.profile, project_dir=ops.project
            )
            op.set_release(release.id)
        if release is not None:
            shutil.rmtree(staging, ignore_errors=True)
        tree = ops.releases.tree(release.id) if release else staging
        runtime = runtime_for(ops, target, config, tree)
        if rollout.announce and ops.dry_run:
            ops.echo(
                f"plan: {rollout.action} profile {config.profile} to {target} "
                f"(current release: {previous_id or 'none'})"
            )
        elif rollout.announce and release is not None and not unchanged:
            ops.echo(f"release {release.id} ({target}, profile {config.profile})")
        try:
            if rollout.staged:
                report = apply_gated(ops, runtime, tree, canary=rollout.canary)
            else:
                runtime.up(tree)
                report = gate(ops, runtime, tree, canary=rollout.canary)
        except (GateFailure, SchedgenError) as exc:
            if release is not None and not unchanged:
                ops.releases.mark(release.id, "failed", note=failure_text(exc))
            if not rollout.staged:
                _not_up(op, release, exc)
            if release is None:
                raise  # a dry run's plan failed: `operation` audits it
            _deploy_failed(ops, op, rollout, config, release, previous, exc)
        if ops.dry_run:
            shutil.rmtree(staging, ignore_errors=True)
            if rollout.announce:
                op.record("dry-run", target=target)
            return DeployOutcome(None, previous_id, None, planned=ops.runner.planned)
        assert release is not None
        if not unchanged:
            ops.releases.set_current(release.id)
        op.record("ok", **rollout.ok_fields(release.id, unchanged))
        return DeployOutcome(release, previous_id, report, unchanged=unchanged)


def _not_up(op: Operation, release: Release | None, exc: GateFailure | SchedgenError) -> NoReturn:
    """`up` failed: audit it and say so (up never rolls back: it converges the stack in place)."""
    what = failure_text(exc)
    op.record("failed", release=release.id if release else None, error=what)
    raise SchedgenError(
        f"the local stack did not come up: {what}",
        code="up_failed",
        hint="see `schedgen logs api` / `schedgen status`",
    ) from exc


def _deploy_failed(
    ops: Ops,
    op: Operation,
    rollout: Rollout,
    config: Config,
    release: Release,
    previous: Release | None,
    exc: GateFailure | SchedgenError,
) -> NoReturn:
    """A deploy failed its gate: the previous release kept serving (the gate ran before the switch), is
    put back (``rollback_on_failure``, same target), or nothing is; audit which, and raise."""
    what = failure_text(exc)
    target = rollout.target
    untouched = isinstance(exc, NotSwitched) and previous is not None
    rolled_back_to: str | None = None
    rollback_error: str | None = None
    if untouched and previous is not None:
        # The gate ran before the switch: the previous release never stopped serving.
        ops.echo(f"deploy failed ({what}); {previous.id} kept serving throughout")
        ops.releases.set_current(previous.id)
        rolled_back_to = previous.id
    elif rollout.rollback_on_failure and previous is not None and previous.target == target:
        ops.echo(f"deploy failed ({what}); rolling back to {previous.id}")
        try:
            prev_runtime = runtime_for(ops, target, config, ops.releases.tree(previous.id))
            prev_runtime.rollback(ops.releases.tree(previous.id))
            # The known-good release gets longer than the new one did: it must come back.
            gate(
                ops,
                prev_runtime,
                ops.releases.tree(previous.id),
                canary=False,
                timeout_s=max(ops.gate_timeout_s, ROLLBACK_GATE_S),
            )
            ops.releases.set_current(previous.id)
            rolled_back_to = previous.id
        except (GateFailure, SchedgenError) as again:
            rollback_error = str(again) if isinstance(again, GateFailure) else again.one_line()
    result = "failed, rolled back" if rolled_back_to else "failed"
    if untouched:
        result = "failed, previous kept serving"
    if rollback_error:
        result = "failed, rollback failed"
    op.record(
        result,
        target=target,
        error=what,
        rolled_back_to=rolled_back_to,
        rollback_error=rollback_error,
    )
    if rollback_error:
        suffix = f"; the rollback to {previous.id if previous else '?'} failed too: {rollback_error}"
    elif untouched:
        suffix = f"; {rolled_back_to} kept serving (the new release never took traffic)"
    elif rolled_back_to:
        suffix = f"; rolled back to {rolled_back_to}, which is live"
    else:
        suffix = "; nothing to roll back to" if previous is None else "; not rolled back (--no-rollback)"
    raise SchedgenError(
        f"{rollout.action} of release {release.id} failed its health gate: {what}{suffix}",
        code="deploy_failed",
        hint="see `schedgen logs api` and `schedgen releases`; data was not touched",
    ) from exc


def rollback(ops: Ops, release_id: str | None = None, *, canary: bool = True) -> Release:
    """Put an earlier release back (default: the one before the current); data is never touched."""
    started = time.monotonic()
    with operation(ops, "rollback", release_id, started=started) as op:
        current = ops.releases.current()
        target_release = ops.releases.get(release_id) if release_id else ops.releases.previous()
        if target_release is None:
            raise SchedgenError(
                "no earlier release to roll back to",
                code="no_previous_release",
                hint="see `schedgen releases`",
            )
        if target_release.status == "failed":
            raise SchedgenError(
                f"release {target_release.id} failed its gate when deployed",
                code="bad_rollback_target",
                hint="pick a release that was live (see `schedgen releases`)",
            )
        tree = ops.releases.tree(target_release.id)
        runtime = runtime_for(ops, target_release.target, tree=tree)
        try:
            apply_gated(ops, runtime, tree, canary=canary, rollback=True)
        except (GateFailure, SchedgenError) as exc:
            what = failure_text(exc)
            op.record("failed", release=target_release.id, error=what)
            raise SchedgenError(
                f"rollback to {target_release.id} failed: {what}", code="rollback_failed"
            ) from exc
        if ops.dry_run:
            return target_release
        if current is not None and current.id != target_release.id:
            ops.releases.mark(current.id, "rolled-back")
        ops.releases.set_current(target_release.id)
        op.record("ok", release=target_release.id, replaced=current.id if current else None)
        return ops.releases.get(target_release.id)


def scale(ops: Ops, counts: Mapping[str, int], *, target: str | None = None) -> dict[str, int]:
    """Set replica counts within the profile's bounds (scale-down lets busy workers finish)."""
    started = time.monotonic()
    config = load_config(ops.project)
    bounds = {
        "api": (config.api.min_replicas, config.api.max_replicas),
        "pdf-worker": (config.worker.min_replicas, config.worker.max_replicas),
    }
    for service, count in counts.items():
        if service not in SCALABLE_SERVICES:
            raise SchedgenError(
                f"cannot scale {service!r}", code="bad_service", hint="services: api, pdf-worker", exit_code=2
            )
        low, high = bounds[service]
        if not low <= count <= high:
            raise SchedgenError(
                f"{service}={count} is outside the profile's bounds {low}..{high} (profile {config.profile})",
                code="scale_out_of_bounds",
                hint=f"pick {low}..{high}, or change {'api' if service == 'api' else 'worker'}.min_replicas/"
                "max_replicas in schedgen.yaml and deploy",
            )
    target = target or current_target(ops)
    current = ops.releases.current()
    with operation(ops, "scale", current.id if current else None, started=started) as op:
        runtime = runtime_for(ops, target, config, ops.releases.tree(current.id) if current else None)
        runtime.scale(counts)
        if not ops.dry_run:
            save_scale(ops, counts)
        op.record("dry-run" if ops.dry_run else "ok", counts=dict(counts), target=target)
    return dict(counts)


def down(ops: Ops, *, volumes: bool = False, target: str | None = None) -> None:
    started = time.monotonic()
    target = target or current_target(ops)
    current = ops.releases.current()
    with operation(ops, "down", current.id if current else None, started=started) as op:
        runtime = runtime_for(ops, target, tree=ops.releases.tree(current.id) if current else None)
        runtime.down(volumes=volumes)
        op.record("dry-run" if ops.dry_run else "ok", volumes=volumes, target=target)


def status(ops: Ops, *, target: str | None = None) -> StackStatus:
    target = target or current_target(ops)
    current = ops.releases.current()
    tree = ops.releases.tree(current.id) if current else None
    runtime = runtime_for(ops, target, tree=tree)
    services = runtime.status()
    urls = runtime.urls()
    return StackStatus(target=target, release=current.id if current else None, services=services, urls=urls)
