"""Evidence the static checks share: where a value sits in the tree, and "every workload must satisfy P".

A check that judges each compose service, container or local program one by one writes only the judgement
(a `Verdict`); the loops over what is in scope and the evidence's file/path wording live here once, so
every check names its evidence the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from schedgen_ops.ops.readiness.context import Context
from schedgen_ops.ops.readiness.inspect import PodTemplate, containers, one_shot_names, pod_templates
from schedgen_ops.ops.readiness.model import Evidence, Finding
from schedgen_ops.ops.readiness.supervisor import SUPERVISORD_CONF, Program, programs
from schedgen_ops.ops.readiness.tree import Manifest, RenderedTree


class Verdict(NamedTuple):
    """One judgement of a workload: ok or not, the message, where the value sits and the value.

    ``where`` is, for a compose service, the key (or key path, a tuple) inside ``services.<name>``; for a
    container or pod template, the document path; for a local program, its supervisord key.
    """

    ok: bool
    message: str
    where: str | tuple[str, ...]
    value: Any = None

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.where,) if isinstance(self.where, str) else self.where

    @property
    def path(self) -> str:
        return self.where if isinstance(self.where, str) else ".".join(self.where)


# --- where a value sits ----------------------------------------------------------------------------


def service_evidence(tree: RenderedTree, name: str, *path: str, value: Any = None) -> Evidence:
    """A compose service's value: the file it came from (base or overlay) and ``services.<name>.<path>``."""
    return Evidence(tree.compose_origin("services", name, *path), ".".join(("services", name, *path)), value)


def manifest_evidence(manifest: Manifest, path: str, value: Any = None) -> Evidence:
    """A Kubernetes object's value: its file and ``Kind/name: <path>``."""
    return Evidence(manifest.file, f"{manifest.ref}: {path}", value)


def program_evidence(program: Program, key: str, value: Any = None) -> Evidence:
    """A local program's setting in supervisord.conf: ``[program:x].<key>``."""
    return Evidence(SUPERVISORD_CONF, f"{program.where}.{key}", value)


def container_label(tmpl: PodTemplate, container: dict[str, Any]) -> str:
    """How messages name a container: ``Kind/name container <name>``."""
    return f"{tmpl.manifest.ref} container {container.get('name')}"


# --- what is in scope ------------------------------------------------------------------------------


def compose_services(
    ctx: Context, *, long_running: bool = False
) -> list[tuple[RenderedTree, str, dict[str, Any]]]:
    """(tree, name, service) of every compose service in scope; ``long_running`` drops the one-shots."""
    if not ctx.has_compose():
        return []
    tree = ctx.compose()
    services = tree.services()
    skip = one_shot_names(services) if long_running else set()
    return [(tree, name, svc or {}) for name, svc in services.items() if name not in skip]


def templates(ctx: Context, *kinds: str) -> list[PodTemplate]:
    """The pod templates of the Kubernetes output in scope (of ``kinds``, default every workload kind)."""
    return pod_templates(ctx.kubernetes(), *kinds) if ctx.has_kubernetes() else []


def local_programs(ctx: Context) -> list[Program]:
    """The local runtime's supervisord programs, when local output is in scope."""
    return programs(ctx.static_tree()) if ctx.has_local() else []


# --- every workload must satisfy P -----------------------------------------------------------------

# A judge returns (or yields) the verdicts on one workload: none to pass it over, several for several facts.
ServiceJudge = Callable[[str, dict[str, Any]], Iterable[Verdict]]  # (name, service)
ContainerJudge = Callable[
    [PodTemplate, str, dict[str, Any]], Iterable[Verdict]
]  # (template, path, container)
TemplateJudge = Callable[[PodTemplate], Iterable[Verdict]]
ProgramJudge = Callable[[Program], Iterable[Verdict]]


def per_service(ctx: Context, judge: ServiceJudge, *, long_running: bool = False) -> list[Finding]:
    """The findings of ``judge`` on every compose service in scope (see `compose_services`)."""
    return [
        Finding(v.ok, v.message, service_evidence(tree, name, *v.keys, value=v.value))
        for tree, name, svc in compose_services(ctx, long_running=long_running)
        for v in judge(name, svc)
    ]


def per_container(ctx: Context, judge: ContainerJudge, *kinds: str, init: bool = True) -> list[Finding]:
    """The findings of ``judge`` on every container (and, with ``init``, init container) in scope."""
    return [
        Finding(v.ok, v.message, manifest_evidence(tmpl.manifest, v.path, v.value))
        for tmpl in templates(ctx, *kinds)
        for path, container in containers(tmpl, init=init)
        for v in judge(tmpl, path, container)
    ]


def per_template(ctx: Context, judge: TemplateJudge, *kinds: str) -> list[Finding]:
    """The findings of ``judge`` on every pod template in scope."""
    return [
        Finding(v.ok, v.message, manifest_evidence(tmpl.manifest, v.path, v.value))
        for tmpl in templates(ctx, *kinds)
        for v in judge(tmpl)
    ]


def per_program(ctx: Context, judge: ProgramJudge) -> list[Finding]:
    """The findings of ``judge`` on every local program in scope."""
    return [
        Finding(v.ok, v.message, program_evidence(program, v.path, v.value))
        for program in local_programs(ctx)
        for v in judge(program)
    ]


def per_workload(
    ctx: Context, on_service: ServiceJudge, on_container: ContainerJudge, *, init: bool = True
) -> list[Finding]:
    """One rule held on compose and Kubernetes alike: ``on_service`` judges every compose service,
    ``on_container`` every container (init containers too, with ``init``)."""
    return per_service(ctx, on_service) + per_container(ctx, on_container, init=init)
