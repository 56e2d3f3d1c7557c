"""Each runtime answers where its stack is reachable (`Runtime.endpoints`), and the local runtime reads its
ports from render.json, which must agree with the supervisord.conf render wrote beside it."""

from __future__ import annotations

import json
import re
import shutil
from configparser import RawConfigParser
from pathlib import Path

import pytest

from schedgen_ops.config import load_config, load_secrets
from schedgen_ops.config.project import init_project
from schedgen_ops.errors import SchedgenError
from schedgen_ops.render import render_tree
from schedgen_ops.runtime import argv as A
from schedgen_ops.runtime.base import Runtime
from schedgen_ops.runtime.compose import ComposeRuntime
from schedgen_ops.runtime.kubernetes import KubernetesRuntime
from schedgen_ops.runtime.local import LocalRuntime
from schedgen_ops.runtime.local_tree import LocalTree
from schedgen_ops.runtime.locate import endpoints, observer
from schedgen_ops.runtime.runner import Runner


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("endpoints-tree")
    project = base / "p"
    init_project(project, profile="medium")
    config = load_config(project, environ={})
    render_tree(config, load_secrets(project), "local", base / "out", project_dir=project)
    return base / "out"


def test_render_json_ports_are_the_ports_in_the_supervisord_commands(tree: Path) -> None:
    recorded = json.loads((tree / "render.json").read_text())["facts"]["local_ports"]
    conf = RawConfigParser(strict=False)
    conf.read(tree / "local" / "supervisord.conf")
    in_commands = {}
    for section in conf.sections():
        if not section.startswith("program:"):
            continue
        match = re.search(r"(?:-p|--port) (\d+)", conf.get(section, "command"))
        if match:
            in_commands[section.removeprefix("program:")] = int(match.group(1))
    assert recorded == in_commands
    assert {"postgres", "redis", "api-blue-1", "api-green-1"} <= set(recorded)


def test_a_tree_rendered_before_recorded_ports_is_still_read(tree: Path, tmp_path: Path) -> None:
    """An upgraded schedgen must still reach, switch away from and roll back to an older release's tree."""
    old = tmp_path / "old"
    shutil.copytree(tree, old)
    manifest = json.loads((old / "render.json").read_text())
    recorded = manifest["facts"].pop("local_ports")
    (old / "render.json").write_text(json.dumps(manifest))
    assert {name: LocalTree(old).port(name) for name in recorded} == recorded
    with pytest.raises(SchedgenError, match=r"neither render\.json nor its command") as info:
        LocalTree(old).port("api-blue-9")
    assert info.value.code == "bad_tree" and "schedgen deploy" in (info.value.hint or "")


def test_local_endpoints_come_from_the_active_tree(tree: Path, tmp_path: Path) -> None:
    project = tmp_path / "project"
    assert endpoints(project, "local").tree is None  # nothing deployed: nothing reachable
    runtime = LocalRuntime(project)
    runtime.point_active(tree)
    found = runtime.endpoints()
    assert found.target == "local" and found.tree == tree.resolve()
    assert not found.running and found.supervisor_sock is None  # no supervisord runs
    assert found.api_url == runtime.public_url()
    assert found.replica_urls == runtime.api_urls()
    assert found.database_url == runtime.secrets()["SCHEDGEN_DATABASE_URL"]  # the operator's role
    assert found.app_env["SCHEDGEN_DATABASE_URL"] == runtime.app_env()["SCHEDGEN_DATABASE_URL"]
    assert found.app_env["SCHEDGEN_DATABASE_URL"] != found.database_url  # not the app's credentials
    assert found.worker_metrics_urls and all(
        u.startswith("http://127.0.0.1:") for u in found.worker_metrics_urls
    )
    assert endpoints(project, "local") == found  # the locator asks the same runtime


def test_local_endpoints_of_a_broken_tree_leave_the_broken_facts_empty(tree: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tree, broken)
    (broken / "local" / "Caddyfile").unlink()
    shutil.rmtree(broken / "local" / "secrets")
    runtime = LocalRuntime(tmp_path / "project")
    runtime.point_active(broken)
    found = runtime.endpoints()
    assert found.tree == broken.resolve()
    assert found.ops_env == {} and found.app_env == {}
    assert found.replica_urls  # the ports are still known (render.json)
    assert found.api_url == LocalTree(tree).public_url()  # so is the front door's address
    manifest = broken / "render.json"
    data = json.loads(manifest.read_text())
    del data["facts"]["public_url"]  # as rendered before the fact existed: only the Caddyfile knew it
    manifest.write_text(json.dumps(data))
    assert runtime.endpoints().api_url == ""


def test_compose_endpoints_without_an_engine_are_empty() -> None:
    def no_engine() -> object:
        raise SchedgenError("no Docker engine", code="no_engine")

    runtime = ComposeRuntime("p", Runner(), engine_factory=no_engine)  # type: ignore[arg-type]
    found = runtime.endpoints()
    assert (found.target, found.api_url, found.replica_urls, found.running) == ("compose", "", {}, False)
    assert found.database_url == "" and found.redis_url == ""  # never published by compose


def test_kubernetes_publishes_nothing_here_and_every_runtime_answers(tmp_path: Path) -> None:
    kube = KubernetesRuntime(A.KubeTarget("ns"), Runner(), tree=tmp_path)
    assert kube.endpoints().tree == tmp_path and kube.endpoints().api_url == ""
    for target in ("local", "compose", "kubernetes"):
        runtime = observer(tmp_path, target)
        assert isinstance(runtime, Runtime) and runtime.name == target
