"""What a rolling compose deploy keeps, starts and retires, from containers as the engine reports them."""

from __future__ import annotations

from schedgen_ops.runtime.engine import ContainerState
from schedgen_ops.runtime.rolling import CONFIG_LABEL, classify, one_shot_services, surge_counts, tree_labels

NEW, OLD = "h-new", "h-old"
IMG_NEW, IMG_OLD = "sha256:new", "sha256:old"


def c(service: str, number: int, config_hash: str, image: str, state: str = "running") -> ContainerState:
    return ContainerState(
        id=f"{service}-{number}", name=f"p-{service}-{number}", service=service, number=number,
        state=state, health="healthy", started_at=None, restarts=0, image_id=image,
        labels={CONFIG_LABEL: config_hash} if config_hash else {},
    )  # fmt: skip


def ids(containers: list[ContainerState]) -> list[str]:
    return [x.id for x in containers]


def test_a_changed_config_makes_every_serving_container_stale_and_surges_to_twice() -> None:
    containers = [
        c("api", 1, OLD, IMG_OLD),
        c("pdf-worker", 1, OLD, IMG_OLD),
        c("pdf-worker", 2, OLD, IMG_OLD),
    ]
    generations = {
        "api": classify(containers, "api", NEW, IMG_OLD, 1),
        "pdf-worker": classify(containers, "pdf-worker", NEW, IMG_OLD, 2),
    }
    assert ids(generations["api"].stale) == ["api-1"] and generations["api"].current == []
    assert ids(generations["pdf-worker"].stale) == ["pdf-worker-1", "pdf-worker-2"]
    assert surge_counts(generations, {"api": 1, "pdf-worker": 2}) == {"api": 2, "pdf-worker": 4}


def test_a_rebuilt_tag_under_the_same_config_is_a_new_release() -> None:
    """Same config hash, new image id under the tag: the running container is stale."""
    generation = classify([c("api", 1, NEW, IMG_OLD)], "api", NEW, IMG_NEW, 1)
    assert ids(generation.stale) == ["api-1"] and generation.current == []


def test_rolling_back_to_the_release_still_serving_starts_nothing() -> None:
    """A failed new generation next to the serving one: the serving one is current, the new one stale."""
    containers = [c("api", 1, OLD, IMG_OLD), c("api", 2, NEW, IMG_NEW)]
    generation = classify(containers, "api", OLD, IMG_OLD, 1)
    assert ids(generation.current) == ["api-1"] and ids(generation.stale) == ["api-2"]
    assert surge_counts({"api": generation}, {"api": 1}) == {}


def test_surplus_current_replicas_beyond_the_desired_count_are_retired_highest_first() -> None:
    containers = [c("api", n, NEW, IMG_NEW) for n in (3, 1, 2)]
    generation = classify(containers, "api", NEW, IMG_NEW, 2)
    assert ids(generation.current) == ["api-1", "api-2"] and ids(generation.stale) == ["api-3"]


def test_containers_that_do_not_run_are_dead_not_serving() -> None:
    containers = [c("api", 1, NEW, IMG_NEW, "exited"), c("api", 2, OLD, IMG_OLD, "restarting")]
    generation = classify(containers, "api", NEW, IMG_NEW, 1)
    assert ids(generation.dead) == ["api-1", "api-2"] and generation.current == generation.stale == []
    # Nothing serves: one new container is needed (dead ones are removed first, not counted).
    assert surge_counts({"api": generation}, {"api": 1}) == {"api": 1}


def test_an_unknown_hash_never_counts_as_current() -> None:
    """`config --hash` printed nothing for a service: every container is stale rather than kept by mistake."""
    generation = classify([c("api", 1, "", "")], "api", "", "", 1)
    assert generation.current == [] and ids(generation.stale) == ["api-1"]


def test_tree_labels_read_the_digest_each_app_service_stamps() -> None:
    text = (
        "services:\n  api:\n    labels: {io.schedgen.config: 'abc'}\n"
        "  pdf-worker:\n    labels: ['io.schedgen.config=def']\n  redis: {}\n"
    )
    assert tree_labels(text, ["api", "pdf-worker", "redis"]) == {
        "api": "abc",
        "pdf-worker": "def",
        "redis": "",
    }


def test_one_shot_services_are_the_labelled_ones() -> None:
    text = (
        "services:\n  migrate:\n    labels: {io.schedgen.one-shot: 'true'}\n"
        "  api:\n    labels: {io.schedgen.config: x}\n  redis: {}\n"
    )
    assert one_shot_services(text) == {"migrate"}
