"""The local runtime's pieces without a running supervisord: scale.json, the rendered tree's facts, the
supervisor client's state reading and the machine facts. The running stack is tests/e2e/test_local_runtime.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from schedgen_ops.config import load_config, load_secrets
from schedgen_ops.config.project import init_project
from schedgen_ops.errors import SchedgenError
from schedgen_ops.render import render_tree
from schedgen_ops.runtime.local import LocalRuntime
from schedgen_ops.runtime.local_machine import external_urls, sock_path
from schedgen_ops.runtime.local_tree import LocalTree
from schedgen_ops.runtime.scale_store import ScaleStore
from schedgen_ops.runtime.supervisor import SupervisorClient, colourless, process_states


def test_scale_store_merges_and_forgets(tmp_path: Path) -> None:
    store = ScaleStore(tmp_path / ".schedgen")
    assert store.read() == {}  # no file yet: the rendered defaults apply
    store.save({"api": 2})
    store.save({"pdf-worker": 3})
    assert store.read() == {"api": 2, "pdf-worker": 3}
    assert json.loads(store.path.read_text()) == {"api": 2, "pdf-worker": 3}
    assert store.path.read_text().endswith("}\n")
    store.path.write_text("{not json")
    assert store.read() == {}  # unreadable: ignored, as before
    store.clear()
    store.clear()  # already gone: fine
    assert not store.path.exists()


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("local-tree")
    project = base / "p"
    init_project(project, profile="medium")
    config = load_config(project, environ={})
    render_tree(config, load_secrets(project), "local", base / "out", project_dir=project)
    return base / "out"


def test_local_tree_reads_slots_ports_and_the_front_door(tree: Path) -> None:
    rendered = LocalTree(tree)
    blue = rendered.slots("api", "blue")
    assert blue and blue == sorted(blue, key=lambda p: int(p.rsplit("-", 1)[1]))
    assert all(name.startswith("api-blue-") for name in blue)
    ports = [rendered.port(name) for name in blue + rendered.slots("api", "green")]
    assert len(set(ports)) == len(ports)  # every slot of both colours has its own port
    assert rendered.port("postgres") > 0 and rendered.port("redis") > 0
    assert rendered.public_url().startswith(("http://127.0.0.1:", "https://127.0.0.1:"))
    assert "SCHEDGEN_OPS_TOKEN" in rendered.secret_file("app")
    assert set(rendered.default_replicas()) == {"api", "pdf-worker"}
    assert rendered.slots("nginx", "blue") == []
    with pytest.raises(SchedgenError, match="no port in the frontdoor command"):
        rendered.port("frontdoor")


def test_runtime_reads_the_same_facts_through_its_active_link(tree: Path, tmp_path: Path) -> None:
    runtime = LocalRuntime(tmp_path / "project", environ={"SCHEDGEN_REDIS_URL": "redis://elsewhere:6379/0"})
    runtime.point_active(tree)
    live = runtime.frontdoor.live()
    assert runtime.slots("api") == LocalTree(tree).slots("api", live)
    assert runtime.keys("api")[0] == f"api-{live}:{runtime.slots('api')[0]}"
    assert runtime.public_url() == LocalTree(tree).public_url()
    assert runtime.app_env()["SCHEDGEN_REDIS_URL"] == "redis://elsewhere:6379/0"  # external wins
    assert runtime.external_programs() == {"redis"}
    runtime.scale_store.save({"pdf-worker": 999})
    assert runtime.desired()["pdf-worker"] == len(runtime.slots("pdf-worker"))  # capped to the slots
    assert runtime.status() == []  # no supervisord runs


def test_process_states_by_key_and_bare_name() -> None:
    infos = [
        {"group": "api-blue", "name": "api-blue-1", "statename": "RUNNING"},
        {"group": "postgres", "name": "postgres", "statename": "STOPPED"},
    ]
    assert process_states(infos) == {
        "api-blue:api-blue-1": "RUNNING",
        "postgres:postgres": "STOPPED",
        "postgres": "STOPPED",
    }
    assert "postgres" not in process_states(infos, bare=False)
    assert [colourless(g) for g in ("api-blue", "pdf-worker-green", "frontdoor")] == [
        "api",
        "pdf-worker",
        "frontdoor",
    ]


def test_supervisor_client_without_a_daemon(tmp_path: Path) -> None:
    assert SupervisorClient(tmp_path / "missing.sock").is_up() is False


def test_machine_facts(tmp_path: Path) -> None:
    short = tmp_path / "run"
    assert sock_path(short, tmp_path) == short / "supervisor.sock"
    deep = tmp_path / ("d" * 120) / "run"
    path = sock_path(deep, tmp_path / "p")
    assert path.parent == Path("/tmp") and path == sock_path(deep, tmp_path / "p")
    assert external_urls({"SCHEDGEN_DATABASE_URL": "", "SCHEDGEN_REDIS_URL": "redis://x"}) == {
        "SCHEDGEN_REDIS_URL": "redis://x"
    }


@pytest.mark.parametrize(
    ("sets", "expected"),
    [
        ({"frontdoor.tls": "off"}, "http://127.0.0.1:"),
        ({"frontdoor.tls": "internal"}, "https://127.0.0.1:"),
        ({"frontdoor.tls": "acme", "domain": "timetable.up.ac.za"}, "https://timetable.up.ac.za:"),
    ],
)
def test_the_front_door_address_is_recorded_as_the_caddyfile_serves_it(
    tmp_path: Path, sets: dict[str, str], expected: str
) -> None:
    """render.json's ``public_url`` is the Caddyfile's first site: the runtime reads the fact, and a tree
    rendered before the fact existed still answers from its Caddyfile, with the same address."""
    project = tmp_path / "p"
    init_project(project, profile="small")
    config = load_config(project, overrides=[f"{key}={value}" for key, value in sets.items()], environ={})
    render_tree(config, load_secrets(project), "local", tmp_path / "out", project_dir=project)
    rendered = LocalTree(tmp_path / "out")
    assert rendered.public_url() == f"{expected}{config.ports.api}"
    manifest = tmp_path / "out" / "render.json"
    data = json.loads(manifest.read_text())
    del data["facts"]["public_url"]
    manifest.write_text(json.dumps(data))
    assert LocalTree(tmp_path / "out").public_url() == f"{expected}{config.ports.api}"
