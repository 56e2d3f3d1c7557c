"""Static proof that Traefik's routing reaches the containers a rolling compose deploy starts.

Traefik cannot run on our build machines, so this reads the rendered files. Traefik uses its file provider
(no Docker socket in any container: the socket is root on the host) with one upstream, the compose service
name `api` on the shared edge network; the engine's DNS answers that name with every running api
container, old and new generation alike (tests/e2e/test_compose_rolling.py checks the resolution on the
real engine). For that to hold, nothing may pin an api container: no container_name, hostname or fixed
address, no host port with the edge on, and the upstream port must be the one uvicorn listens on.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from renderkit import PROFILES, PROJECT, SECRETS, config_for

from schedgen_ops.render import render_tree

PINNING_KEYS = ("container_name", "hostname", "mac_address")


def _load(tree: Path, *parts: str) -> dict:
    data: dict = yaml.safe_load(tree.joinpath("compose", *parts).read_text())
    return data


def _grace_s(value: str) -> int:
    assert value.endswith("s"), value
    return int(value[:-1])


@pytest.mark.parametrize("profile", PROFILES)
def test_traefik_upstream_is_the_api_service_name_on_a_network_both_share(
    rendered: Callable[[str, str], Path], profile: str
) -> None:
    tree = rendered(profile, "compose")
    config = config_for(profile)
    services = _load(tree, "docker-compose.yml")["services"]
    dynamic = yaml.safe_load((tree / "compose" / "traefik" / "dynamic.yml").read_text())
    balancer = dynamic["http"]["services"]["api"]["loadBalancer"]
    urls = [urlsplit(server["url"]) for server in balancer["servers"]]
    assert [(u.scheme, u.hostname, u.port) for u in urls] == [("http", "api", config.ports.api)]
    api = services["api"]
    # The port uvicorn binds and the one the api exposes are Traefik's upstream port.
    assert api["command"][api["command"].index("--port") + 1] == str(config.ports.api)
    assert str(config.ports.api) in api["expose"]
    assert "edge" in api["networks"] and "edge" in services["traefik"]["networks"]
    # Traefik only sends to a replica that answers /readyz (a draining or broken one drops out).
    assert balancer["healthCheck"]["path"] == "/readyz"
    # The file provider only: no container gets the Docker socket.
    static = yaml.safe_load((tree / "compose" / "traefik" / "traefik.yml").read_text())
    assert set(static["providers"]) == {"file"}
    for name, spec in services.items():
        assert not any("docker.sock" in str(v) for v in spec.get("volumes", [])), name


@pytest.mark.parametrize("profile", PROFILES)
def test_nothing_pins_an_api_or_worker_container_so_two_generations_can_run(
    rendered: Callable[[str, str], Path], profile: str
) -> None:
    tree = rendered(profile, "compose")
    base = _load(tree, "docker-compose.yml")["services"]
    prod = _load(tree, "docker-compose.prod.yml")["services"]
    for service in ("api", "pdf-worker"):
        for key in PINNING_KEYS:
            assert key not in base[service] and key not in prod.get(service, {}), (service, key)
        networks = base[service]["networks"]
        assert isinstance(networks, list), (
            f"{service}: per-network settings (fixed addresses) are not allowed"
        )
        assert "ports" not in base[service] and "ports" not in prod.get(service, {}), service


@pytest.mark.parametrize("profile", PROFILES)
def test_new_replicas_turn_healthy_fast_and_old_ones_stop_gracefully(
    rendered: Callable[[str, str], Path], profile: str
) -> None:
    tree = rendered(profile, "compose")
    config = config_for(profile)
    services = _load(tree, "docker-compose.yml")["services"]
    for service in ("api", "pdf-worker"):
        check = services[service]["healthcheck"]
        assert _grace_s(check["interval"]) <= 5, (service, check)  # a new replica counts within seconds
        assert _grace_s(check["start_period"]) >= 60, (service, check)  # a loaded host may start slowly
        assert services[service]["stop_signal"] == "SIGTERM"
        assert services[service]["init"] is True  # a SIGTERM during start-up is not dropped by PID 1
    # uvicorn drains for up to 30 s; a worker finishes its job (job timeout) before it is killed.
    assert _grace_s(services["api"]["stop_grace_period"]) > 30
    job_timeout = config.role_settings("worker").job_timeout_s
    assert _grace_s(services["pdf-worker"]["stop_grace_period"]) >= job_timeout + 30


def test_the_release_label_follows_the_configuration(tmp_path: Path) -> None:
    """The label the roll compares: equal for equal input, different when the configuration changes."""

    def labels(name: str, *overrides: str) -> tuple[str, str]:
        out = tmp_path / name
        render_tree(config_for("small", *overrides), SECRETS, "compose", out, project_dir=PROJECT)
        services = _load(out, "docker-compose.yml")["services"]
        return services["api"]["labels"]["io.schedgen.config"], services["pdf-worker"]["labels"][
            "io.schedgen.config"
        ]

    first, again = labels("a"), labels("b")
    changed = labels("c", "service.log_level=DEBUG")
    assert first == again and first[0] == first[1] and len(first[0]) >= 16
    assert changed[0] != first[0] and changed[1] != first[1]


def test_without_the_edge_the_published_range_has_room_for_two_generations(tmp_path: Path) -> None:
    config = config_for("small", "edge.enabled=false", "edge.api_bind=127.0.0.1:18000")
    render_tree(config, SECRETS, "compose", tmp_path, project_dir=PROJECT)
    (binding,) = _load(tmp_path, "docker-compose.prod.yml")["services"]["api"]["ports"]
    first, _, last = binding["published"].partition("-")
    assert (int(first), int(last)) == (18000, 18000 + 2 * config.api.max_replicas - 1)
    assert binding["host_ip"] == "127.0.0.1" and binding["target"] == config.ports.api
