"""`schedgen build`: the service image from the Dockerfile the package ships, with no network inside.

The host makes a wheelhouse (this package plus every dependency pinned by constraints.txt), so the
image build only copies and installs wheels: it works air-gapped, on ``python:3.11-slim`` or on a plain
Debian base that has python3 and python3-venv. The dependency wheels are cached by the hash of what
decides them (constraints and the declared dependencies), so only this package's wheel is rebuilt on a
warm run. Every external command goes through the `Runner` (echoed, audited, ``--dry-run``).

With backup.pitr on, compose also runs a derived postgres image with pgBackRest
(container/postgres-pitr.Dockerfile, `build_pitr_postgres`): a package install inside that build is the
one place a network (the distribution's mirror) is used.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from schedgen_ops import __version__
from schedgen_ops.config.model import Config
from schedgen_ops.errors import SchedgenError
from schedgen_ops.resources import data_file
from schedgen_ops.runtime.runner import Runner

DEFAULT_BASE = "python:3.11-slim"
OWN_DIST = "schedgen_ops"
#: Wheels the host's resolve can leave out because of environment markers but an image's older python
#: needs: Debian bookworm's python is 3.11.2, and redis requires async-timeout below 3.11.3.
MARKER_WHEELS = ("async-timeout",)


@dataclass
class BuildResult:
    tag: str
    image_id: str
    base_image: str
    version: str
    commit: str
    size_bytes: int
    duration_s: float
    wheels: int
    cached_wheels: bool

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


# ------------------------------------------------------------------------------------------- argv


def docker_server_version() -> list[str]:
    return ["docker", "version", "--format", "{{.Server.Version}}"]


def docker_image_id(ref: str) -> list[str]:
    return ["docker", "image", "inspect", "--format", "{{.Id}} {{.Size}}", ref]


def docker_build(
    context: Path, tag: str, *, base_image: str, version: str, commit: str, no_cache: bool = False
) -> list[str]:
    return [
        "docker",
        "build",
        "--pull=false",
        *(["--no-cache"] if no_cache else []),
        "--build-arg",
        f"BASE_IMAGE={base_image}",
        "--build-arg",
        f"VERSION={version}",
        "--build-arg",
        f"GIT_COMMIT={commit}",
        "--tag",
        tag,
        str(context),
    ]


def docker_tag(source: str, target: str) -> list[str]:
    return ["docker", "tag", source, target]


def pip_wheel(source: Path, wheel_dir: Path, constraints: Path, *, deps: bool) -> list[str]:
    """Wheels of ``source`` (with its dependencies at the constraints, plus MARKER_WHEELS) or alone."""
    argv = [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(wheel_dir)]
    if not deps:
        return [*argv, "--no-deps", str(source)]
    return [*argv, "-c", str(constraints), str(source), *MARKER_WHEELS]


# ------------------------------------------------------------------------------------------ facts


def require_engine(runner: Runner) -> str:
    """The engine's version, or one line that says how to get an engine."""
    if shutil.which("docker") is None:
        raise SchedgenError(
            "the docker CLI is not installed",
            code="engine_unreachable",
            hint="install Docker (Debian: apt-get install docker.io) or use --target local",
        )
    result = runner.run(docker_server_version(), check=False, read_only=True, timeout_s=20)
    if not result.ok or not result.stdout.strip():
        where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise SchedgenError(
            f"no Docker engine answers at {where}" + (f" ({detail[-1]})" if detail else ""),
            code="engine_unreachable",
            hint="start it (`systemctl start docker`, or `dockerd &` as root) or set DOCKER_HOST",
        )
    return result.stdout.strip()


def image_present(runner: Runner, ref: str) -> tuple[str, int] | None:
    """(image id, size) of a local image, or None when the engine does not have it."""
    result = runner.run(docker_image_id(ref), check=False, read_only=True, timeout_s=30)
    if not result.ok:
        return None
    image_id, _, size = result.stdout.strip().partition(" ")
    return image_id, int(size or 0)


def source_dir() -> Path | None:
    """The source checkout this package runs from (pyproject.toml beside it), if any."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() and (root / OWN_DIST).is_dir() else None


def git_commit(root: Path | None) -> str:
    if root is None or not (root / ".git").exists() or shutil.which("git") is None:
        return "unknown"
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    commit = out.stdout.strip() or "unknown"
    return commit + ("-dirty" if dirty.stdout.strip() else "")


def wheel_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "schedgen" / "wheelhouse"


def dependency_key(root: Path, constraints: Path) -> str:
    """What decides the dependency wheels: the constraints and the declared dependencies."""
    digest = hashlib.sha256()
    digest.update(constraints.read_bytes())
    digest.update((root / "pyproject.toml").read_bytes())
    digest.update(f"{sys.version_info[:2]} {MARKER_WHEELS}".encode())
    return digest.hexdigest()[:16]


# ------------------------------------------------------------------------------------------ build


def build_image(
    runner: Runner,
    *,
    tag: str,
    base_image: str = DEFAULT_BASE,
    wheelhouse: Path | None = None,
    no_cache: bool = False,
    progress: Callable[[str], None] = lambda _: None,
) -> BuildResult | None:
    """Wheelhouse on the host, then ``docker build``; returns None under ``--dry-run``."""
    started = time.monotonic()
    if not runner.dry_run:
        require_engine(runner)
    root = source_dir()
    constraints = data_file("constraints.txt")
    dockerfile = data_file("container/Dockerfile")
    commit = git_commit(root)
    with tempfile.TemporaryDirectory(prefix="schedgen-build-") as tmp:
        context = Path(tmp)
        deps, app = context / "wheels" / "deps", context / "wheels" / "app"
        deps.mkdir(parents=True)
        app.mkdir()
        cached = False
        if wheelhouse is not None:
            if not any(wheelhouse.glob(f"{OWN_DIST.replace('_', '-')}*.whl")) and not any(
                wheelhouse.glob(f"{OWN_DIST}-*.whl")
            ):
                raise SchedgenError(
                    f"{wheelhouse} holds no schedgen_ops wheel",
                    code="build_no_wheel",
                    hint="fill it with `pip wheel -c constraints.txt --wheel-dir DIR .` in a checkout",
                )
            _link_wheels(wheelhouse, deps, app)
        else:
            if root is None:
                raise SchedgenError(
                    "this installation has no source checkout to build the image's wheel from",
                    code="build_no_source",
                    hint="pass --wheelhouse DIR (wheels of schedgen-ops and its dependencies)",
                )
            cache = wheel_cache_dir() / dependency_key(root, constraints)
            cached = cache.is_dir() and any(cache.glob("*.whl"))
            if not cached:
                progress(f"build: making the dependency wheelhouse in {cache} (once per constraints.txt)")
                # Each build fills its own directory: two builds at once must not empty each other's.
                cache.parent.mkdir(parents=True, exist_ok=True)
                partial = Path(tempfile.mkdtemp(prefix=f"{cache.name}.partial-", dir=cache.parent))
                _run_build_step(runner, pip_wheel(root, partial, constraints, deps=True), "wheelhouse")
                for own in partial.glob(f"{OWN_DIST}-*.whl"):
                    own.unlink()
                if runner.dry_run:
                    shutil.rmtree(partial, ignore_errors=True)
                else:
                    _publish_wheelhouse(partial, cache)
            else:
                progress(f"build: dependency wheels from the cache ({cache})")
            progress("build: this package's wheel")
            _run_build_step(runner, pip_wheel(root, app, constraints, deps=False), "package wheel")
            if cache.is_dir():
                _link_wheels(cache, deps, app)
        shutil.copy2(dockerfile, context / "Dockerfile")
        count = len(list(deps.glob("*.whl"))) + len(list(app.glob("*.whl")))
        if not runner.dry_run and image_present(runner, base_image) is None:
            progress(f"build: base image {base_image} is not on this engine; docker will try to pull it")
        progress(f"build: docker build {tag} on {base_image} ({count} wheels, no network inside)")
        argv = docker_build(
            context, tag, base_image=base_image, version=__version__, commit=commit, no_cache=no_cache
        )
        _run_build_step(runner, argv, "docker build", stream=progress)
    found = _built(runner, tag)
    if found is None:
        return None
    return BuildResult(
        tag=tag,
        image_id=found[0],
        base_image=base_image,
        version=__version__,
        commit=commit,
        size_bytes=found[1],
        duration_s=round(time.monotonic() - started, 1),
        wheels=count,
        cached_wheels=cached,
    )


def _link_wheels(source: Path, deps: Path, app: Path) -> None:
    """This package's wheel into ``app``, every other wheel into ``deps`` (hard links when possible)."""
    for wheel in source.glob("*.whl"):
        target = (app if wheel.name.startswith(f"{OWN_DIST}-") else deps) / wheel.name
        if target.exists():
            continue
        try:
            os.link(wheel, target)
        except OSError:
            shutil.copy2(wheel, target)


def _run_build_step(
    runner: Runner, argv: list[str], what: str, stream: Callable[[str], None] | None = None
) -> None:
    """Run one step; a failure is a build error that names the step and its last output line."""
    if runner.dry_run or stream is None:
        result = runner.run(argv, check=False)
        if not result.ok:
            lines = (result.stderr or result.stdout).strip().splitlines()
            raise SchedgenError(
                f"image build failed at the {what} step: {lines[-1] if lines else 'no output'}",
                code="build_failed",
                hint="rerun with --debug, or run the command above by hand",
            )
        return
    runner.note(f"docker build ({what})")
    seen: list[str] = []
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip("\n")
        seen.append(line)
        stream(f"  {line}")
    if proc.wait() != 0:
        tail = next((entry for entry in reversed(seen) if entry.strip()), "no output")
        pull = any("registry" in entry or "pull access denied" in entry for entry in seen[-5:])
        raise SchedgenError(
            f"image build failed at the {what} step: {tail}",
            code="build_failed",
            hint="the base image could not be pulled: load it (`docker load`/`docker import`) or pass "
            "--base-image with one this engine has"
            if pull
            else "the docker build output above shows the failing step",
        )


# ------------------------------------------------------------------------- the PITR postgres image


def docker_build_file(context: Path, dockerfile: Path, tag: str, *, base_image: str) -> list[str]:
    """``docker build -f DOCKERFILE`` of a derived image FROM ``base_image`` (never pulls the base)."""
    return [
        "docker",
        "build",
        "--pull=false",
        "--file",
        str(dockerfile),
        "--build-arg",
        f"BASE_IMAGE={base_image}",
        "--tag",
        tag,
        str(context),
    ]


def build_pitr_postgres(
    runner: Runner,
    config: Config,
    *,
    tag: str | None = None,
    force: bool = False,
    progress: Callable[[str], None] = lambda _: None,
) -> BuildResult | None:
    """The compose postgres image with pgBackRest (backup.pitr), FROM ``postgres.image``.

    Its tag names its content (render/pitr.py `compose_image`), so an image already on the engine is
    the one this config renders and is kept unless ``force``. apt-get/apk run inside the build: the
    package comes from the base image's own distribution. None under ``--dry-run``.
    """
    from schedgen_ops.render.pitr import PITR_DOCKERFILE, compose_image

    started = time.monotonic()
    expected, base = compose_image(config), config.postgres.image
    if tag is not None and tag != expected:
        raise SchedgenError(
            f"the rendered stack runs {tag}, but this config's postgres image with pgBackRest is {expected}",
            code="image_missing",
            hint="render and deploy again with the same settings (postgres.image decides the tag), or "
            "run `schedgen build` with them",
        )
    tag = expected
    if not runner.dry_run:
        require_engine(runner)
        found = image_present(runner, tag)
        if found is not None and not force:
            progress(f"build: {tag} (pgBackRest on {base}) is already on this engine")
            return _pitr_result(tag, base, found, started)
        if image_present(runner, base) is None:
            progress(f"build: base image {base} is not on this engine; docker will try to pull it")
    with tempfile.TemporaryDirectory(prefix="schedgen-build-pitr-") as tmp:
        dockerfile = Path(tmp) / "Dockerfile"
        shutil.copy2(data_file(PITR_DOCKERFILE), dockerfile)
        progress(f"build: docker build {tag} (pgBackRest on {base})")
        argv = docker_build_file(Path(tmp), dockerfile, tag, base_image=base)
        _run_build_step(runner, argv, "postgres pgBackRest image build", stream=progress)
    found = _built(runner, tag)
    return None if found is None else _pitr_result(tag, base, found, started)


def _publish_wheelhouse(partial: Path, cache: Path) -> None:
    """Move a finished wheelhouse into place; one a concurrent build published first is kept (same key,
    same wheels) and this copy dropped."""
    try:
        partial.rename(cache)
    except OSError:
        if any(cache.glob("*.whl")):
            shutil.rmtree(partial, ignore_errors=True)
            return
        shutil.rmtree(cache, ignore_errors=True)
        partial.rename(cache)


def _built(runner: Runner, tag: str) -> tuple[str, int] | None:
    """The image a finished ``docker build`` tagged (id, size); None on a dry run, which built nothing."""
    if runner.dry_run:
        return None
    found = image_present(runner, tag)
    if found is None:  # pragma: no cover - docker build succeeded but the tag is missing
        raise SchedgenError(f"docker build finished but {tag} is missing", code="build_failed")
    return found


def _pitr_result(tag: str, base: str, found: tuple[str, int], started: float) -> BuildResult:
    return BuildResult(
        tag=tag,
        image_id=found[0],
        base_image=base,
        version=__version__,
        commit="",
        size_bytes=found[1],
        duration_s=round(time.monotonic() - started, 1),
        wheels=0,
        cached_wheels=False,
    )
