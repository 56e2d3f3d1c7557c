"""Blue/green for the local runtime: the other colour starts from the new tree beside the serving one.

It passes the gate on its own ports, the front door reloads onto it, the old api slots drain and stop,
and workers are replaced one at a time (each finishes its job). Nothing here starts or stops a
data service; `LocalRuntime.ensure_data` does, and is idempotent.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from schedgen_ops.errors import SchedgenError
from schedgen_ops.runtime.base import SCALABLE_SERVICES, NotSwitched
from schedgen_ops.runtime.frontdoor import other
from schedgen_ops.runtime.gate import GateFailure, GateReport, run_gate

if TYPE_CHECKING:
    from schedgen_ops.runtime.local import LocalRuntime

SERVICES = SCALABLE_SERVICES


def blue_green(
    rt: LocalRuntime,
    tree: Path,
    *,
    canary: bool,
    timeout_s: float,
    echo: Callable[[str], None],
    full_gate: bool,
) -> GateReport:
    """Start ``tree`` as the other colour beside the serving one, gate it, switch, drain the old colour.

    A failure before the switch stops only the new colour, puts the previous tree back in supervisord and
    raises `NotSwitched`: the serving processes are never touched. ``full_gate``: the HTTP gate (with a
    canary upload when ``canary``); otherwise each new api slot only has to answer /readyz.
    """
    old_tree = rt.active_tree()
    old, new = rt.frontdoor.live(), other(rt.frontdoor.live())
    serving = {f"{service}-{old}" for service in SERVICES} | {"frontdoor"}
    want = rt.desired(tree)
    rt.point_active(tree)
    try:
        kept_changed = rt.programs.reload_groups(serving)
        for service in SERVICES:  # a leftover of an interrupted deploy must run the new definition
            rt.programs.stop(rt.keys(service, tree, new))
            rt.supervisor.refresh_group(f"{service}-{new}")
        rt.ensure_data(tree)
        new_api = rt.keys("api", tree, new)[: max(1, want["api"])]
        new_workers = rt.keys("pdf-worker", tree, new)[: want["pdf-worker"]]
        echo(f"deploy: starting {', '.join(new_api + new_workers[:1])} beside the {old} release")
        rt.programs.start(new_api + new_workers[:1])
        if full_gate:
            urls = [f"http://127.0.0.1:{rt.port(tree, k.split(':')[1])}" for k in new_api]
            token = rt.app_env(tree)["SCHEDGEN_OPS_TOKEN"]
            report = run_gate(urls, token, timeout_s=timeout_s, with_canary=canary, echo=echo)
        else:
            rt.wait_ready(tree, [k.split(":")[1] for k in new_api], timeout_s)
            report = GateReport()
    except (GateFailure, SchedgenError) as exc:
        what = str(exc) if isinstance(exc, GateFailure) else exc.one_line()
        echo(f"deploy: the {new} release failed; stopping it, the {old} release keeps serving")
        rt.programs.stop([k for service in SERVICES for k in rt.keys(service, tree, new)])
        if old_tree is not None:
            rt.point_active(old_tree)
            rt.programs.reload_groups(serving)
            for service in SERVICES:
                rt.supervisor.refresh_group(f"{service}-{new}")
        raise NotSwitched(what) from exc
    # Switch: the front door sends new requests to the new slots; the old ones finish theirs, then stop.
    rt.frontdoor.set_live(new)
    rt.switch(tree, [rt.port(tree, k.split(":")[1]) for k in new_api])
    if "frontdoor" in kept_changed:  # its program definition changed: a restart is the only way
        rt.programs.stop(["frontdoor"])
        rt.supervisor.refresh_group("frontdoor")
        rt.programs.start(["frontdoor"])
    echo(f"deploy: front door -> {', '.join(new_api)}; draining the {old} api slots")
    rt.programs.stop(rt.programs.running_keys(f"api-{old}"))
    # Workers one at a time: stop an old one (it finishes its job), start the next new one.
    old_workers = rt.programs.running_keys(f"pdf-worker-{old}")
    for i, key in enumerate(old_workers):
        rt.programs.stop([key])
        if i + 1 < len(new_workers):
            rt.programs.start([new_workers[i + 1]])
    rt.programs.start(new_workers)
    for group in serving - {"frontdoor"}:
        rt.supervisor.refresh_group(group)
    return report
