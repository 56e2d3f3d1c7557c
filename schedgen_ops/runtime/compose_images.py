"""The images of a compose release: which the files name, making sure the engine has each, and the ids a
release ran (so a rollback runs the same bits, not whatever the tag points at now).

Ours (the service image and the postgres image with pgBackRest) are built when missing, never pulled;
others are pulled only when missing, and each failure says which of the two it was.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from schedgen_ops.errors import SchedgenError
from schedgen_ops.runtime import argv as A
from schedgen_ops.runtime.runner import Runner


def listed(runner: Runner, project: A.ComposeProject) -> list[str]:
    """Every image the merged files name (``compose config --images``)."""
    result = runner.run(A.compose_images(project), read_only=True, timeout_s=60)
    return sorted({line.strip() for line in result.stdout.splitlines() if line.strip()})


def ensure(
    runner: Runner,
    images: list[str],
    service_image: str | None,
    build_missing: Callable[[str], None] | None,
) -> None:
    """Build our missing images, pull other missing ones; never pull what is present."""
    from schedgen_ops.render.pitr import is_pitr_image
    from schedgen_ops.runtime.imagebuild import image_present

    for image in images:
        if image_present(runner, image) is not None:
            continue
        if image == service_image or is_pitr_image(image):  # ours: built, never pulled
            if build_missing is None:
                raise SchedgenError(
                    f"the service image {image} is not on this engine",
                    code="image_missing",
                    hint="build it with `schedgen build`, or `docker load`/pull it from your registry",
                )
            runner.note(f"the image {image} is missing: building it")
            build_missing(image)
            continue
        result = runner.run(A.docker_pull(image), check=False, timeout_s=600)
        if not result.ok:
            lines = (result.stderr or result.stdout).strip().splitlines()
            raise SchedgenError(
                f"pulling {image} failed: {lines[-1] if lines else 'no output'}",
                code="pull_failed",
                hint="load or pull it by hand, or point its setting at an image this engine has "
                "(`schedgen config show` lists every image under derived.images)",
            )


def record(runner: Runner, images: list[str], path: Path) -> None:
    """Write the id each of ``images`` has now to ``path`` (beside the release's tree)."""
    from schedgen_ops.runtime.imagebuild import image_present

    ids = {}
    for image in images:
        found = image_present(runner, image)
        if found is not None:
            ids[image] = found[0]
    path.write_text(json.dumps(ids, indent=2, sort_keys=True) + "\n")


def restore(runner: Runner, path: Path) -> None:
    """Re-tag each image recorded in ``path`` to the id it had; an id the engine lost is said, not fatal."""
    from schedgen_ops.runtime.imagebuild import docker_tag, image_present

    try:
        ids = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    for image, image_id in sorted(ids.items()):
        found = image_present(runner, image)
        if found is not None and found[0] == image_id:
            continue
        if image_present(runner, image_id) is None:
            runner.note(f"image {image_id[:19]} of {image} is gone; keeping the current {image}")
            continue
        runner.run(docker_tag(image_id, image))
