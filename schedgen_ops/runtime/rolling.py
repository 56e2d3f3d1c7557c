"""Which containers a rolling compose deploy keeps, starts and retires (pure: no engine, no commands).

A running container belongs to the release in a tree when its ``io.schedgen.config`` label (the rendered
configuration's digest, secrets included, which the compose file stamps on the api and workers) and the
image id its tag points at both match the tree. Compose's own ``config --hash`` is no help: for a service
with an env_file it differs from the hash compose labels the container with. Every other running
container is the previous generation: it keeps serving until the new one is healthy and has passed the
gate, and is then stopped gracefully. That is docker-rollout's scheme (scale to twice, wait for health,
remove the old) with our digest deciding what "new" means, so a rollback to the release that is still
running starts nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from schedgen_ops.runtime.engine import ContainerState

#: Stamped on the api and worker containers by templates/compose/docker-compose.yml.j2.
CONFIG_LABEL = "io.schedgen.config"


@dataclass
class Generation:
    """One service's containers, split by what a roll does with them."""

    service: str
    current: list[ContainerState] = field(default_factory=list)
    """Running and of the tree's release (kept; at most the desired count)."""
    stale: list[ContainerState] = field(default_factory=list)
    """Running but of another release, or beyond the desired count: retired after the gate."""
    dead: list[ContainerState] = field(default_factory=list)
    """Not running (exited, created, restarting): they serve nothing and are removed before a surge."""


def matches(container: ContainerState, config_hash: str, image_id: str) -> bool:
    """Whether a container runs the tree's configuration (and, when known, the tree's image id)."""
    if not config_hash or container.labels.get(CONFIG_LABEL) != config_hash:
        return False
    return not image_id or container.image_id == image_id


def classify(
    containers: Iterable[ContainerState], service: str, config_hash: str, image_id: str, desired: int
) -> Generation:
    """Split ``service``'s containers; surplus current ones (highest replica numbers) count as stale."""
    generation = Generation(service)
    for container in sorted((c for c in containers if c.service == service), key=lambda c: c.number):
        if container.state != "running":
            generation.dead.append(container)
        elif matches(container, config_hash, image_id):
            generation.current.append(container)
        else:
            generation.stale.append(container)
    surplus = generation.current[max(0, desired) :]
    del generation.current[max(0, desired) :]
    generation.stale.extend(surplus)
    return generation


def surge_counts(generations: Mapping[str, Generation], desired: Mapping[str, int]) -> dict[str, int]:
    """The ``--scale`` of each service that still needs new containers: everything running stays, plus
    the missing ones (with one serving replica per service that is twice the desired count)."""
    counts = {}
    for service, generation in generations.items():
        missing = desired.get(service, 1) - len(generation.current)
        if missing > 0:
            counts[service] = len(generation.current) + len(generation.stale) + missing
    return counts


def tree_labels(compose_file: str, services: Iterable[str]) -> dict[str, str]:
    """The CONFIG_LABEL each service of a rendered compose file stamps ("" when it has none)."""
    import yaml

    document = yaml.safe_load(compose_file) or {}
    found = {}
    for service in services:
        labels = ((document.get("services") or {}).get(service) or {}).get("labels") or {}
        if isinstance(labels, list):
            labels = dict(item.partition("=")[::2] for item in labels)
        found[service] = str(labels.get(CONFIG_LABEL, ""))
    return found


def one_shot_services(compose_file: str) -> set[str]:
    """Services of a rendered compose file labelled ``io.schedgen.one-shot`` (they run and exit)."""
    import yaml

    services = (yaml.safe_load(compose_file) or {}).get("services") or {}
    return {
        name
        for name, spec in services.items()
        if str(((spec or {}).get("labels") or {}).get("io.schedgen.one-shot", "")).lower() == "true"
    }
