"""Locally built test images, cached by content: a fresh machine builds each once, a warm run reuses them.

No image registry is reachable here, so everything starts from a Debian base made with debootstrap from the
machine's own apt mirror and imported into the engine. The stand-ins for the official postgres and redis
images are Dockerfiles under images/<name>/ built FROM that base with Debian's packages; they honour the
official images' interfaces, so our rendered compose file runs with them by changing only the image name.

Tags are content hashes (recipe for the base; build directory + base tag for the stand-ins): changing a
recipe or a file under images/ yields a new tag and a rebuild, nothing else does. Run
`python -m tests.dockerkit` to build them ahead of a test run.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from .engine import file_lock, require_docker, run, unavailable

REPO = "schedgen-test"
IMAGES_DIR = Path(__file__).resolve().parent / "images"
STANDINS = ("postgres", "redis")

SUITE = "bookworm"
VARIANT = "minbase"
INCLUDE = ("python3", "python3-venv", "ca-certificates")
# Bump when the base recipe (debootstrap arguments or the clean-up in _prepare_rootfs) changes.
BASE_RECIPE_VERSION = 1
BASE_PATH_ENV = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MIRROR_ENV = "SCHEDGEN_TEST_DEBIAN_MIRROR"  # overrides the mirror read from the apt sources
WORK_DIR = Path("/var/tmp")
BUILD_TIMEOUT_S = 1200


def _progress(message: str) -> None:
    print(f"dockerkit: {message}", flush=True)


def _digest(parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def image_exists(tag: str) -> bool:
    """Whether the engine already holds `tag` (the cache check that keeps warm runs quick)."""
    return run(["docker", "image", "inspect", "--format", "{{.Id}}", tag], timeout=30).returncode == 0


# --- The Debian mirror, from this machine's apt sources ---------------------------------------------


def _deb822_sources(text: str) -> Iterator[tuple[str, list[str]]]:
    """(URI, suites) of each enabled `Types: deb` stanza of a deb822 .sources file."""
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = ""
        for line in stanza.splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if line[0] in " \t" and key:
                fields[key] += " " + line.strip()
                continue
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
            continue
        for uri in fields.get("uris", "").split():
            yield uri, fields.get("suites", "").split()


def _one_line_sources(text: str) -> Iterator[tuple[str, list[str]]]:
    """(URI, [suite]) of each `deb [options] URI suite components...` line of a sources.list."""
    pattern = re.compile(r"^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)")
    for line in text.splitlines():
        match = pattern.match(line)
        if match:
            yield match.group(1), [match.group(2)]


def _apt_sources() -> list[tuple[str, list[str]]]:
    found: list[tuple[str, list[str]]] = []
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        found += _deb822_sources(path.read_text(errors="replace"))
    for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*.list"))]:
        if path.is_file():
            found += _one_line_sources(path.read_text(errors="replace"))
    return [(uri.rstrip("/"), suites) for uri, suites in found if re.match(r"(https?|file)://", uri)]


def debian_mirror() -> str:
    """The Debian archive this machine's apt uses for bookworm (never a host name written in the repo)."""
    override = os.environ.get(MIRROR_ENV)
    if override:
        return override.rstrip("/")
    sources = _apt_sources()
    for uri, suites in sources:
        if SUITE in suites:
            return uri
    # A host on another release: its main archive (not -security/-updates) also serves bookworm.
    for uri, suites in sources:
        if "security" not in uri and any("-" not in s and "/" not in s for s in suites):
            return uri
    unavailable(
        f"no Debian mirror for {SUITE} in /etc/apt/sources.list(.d): add a `deb URI {SUITE} main` source "
        f"or set {MIRROR_ENV}=URI"
    )


# --- Base image ------------------------------------------------------------------------------------


def base_tag() -> str:
    """The base image's tag: a hash of the recipe (suite, variant, packages, version), not the mirror."""
    recipe = {"suite": SUITE, "variant": VARIANT, "include": sorted(INCLUDE), "recipe": BASE_RECIPE_VERSION}
    return f"{REPO}/base:{_digest(recipe)}"


def _log_tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _prepare_rootfs(root: Path) -> None:
    """Make the debootstrap tree a good container base: small, no services started by package installs."""
    for deb in (root / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()
    lists = root / "var/lib/apt/lists"
    for entry in lists.iterdir() if lists.is_dir() else []:
        if entry.is_file():
            entry.unlink()
    if not (root / "etc/apt/sources.list").is_file():
        raise RuntimeError(f"debootstrap wrote no {root}/etc/apt/sources.list: apt would fail in the image")
    # Package maintainer scripts must not start daemons inside image builds (as Debian's own images do).
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\n# No services are started during image builds.\nexit 101\n")
    policy.chmod(0o755)
    (root / "etc/apt/apt.conf.d/90schedgen-test").write_text(
        'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\nAcquire::Languages "none";\n'
    )
    # The engine provides these per container; debootstrap copied the build host's.
    for name in ("etc/hostname", "etc/resolv.conf"):
        path = root / name
        if path.is_file() or path.is_symlink():
            path.unlink()
            path.write_text("")


def _unmount_below(root: Path) -> None:
    """Unmount what an interrupted debootstrap left mounted (e.g. proc), so the tree can be removed."""
    prefix = str(root.resolve()) + "/"
    with open("/proc/mounts") as fh:
        points = [line.split()[1] for line in fh if line.split()[1].startswith(prefix)]
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)


def _debootstrap(root: Path, mirror: str, log_path: Path) -> None:
    debootstrap = shutil.which("debootstrap") or next(
        (p for p in ("/usr/sbin/debootstrap", "/sbin/debootstrap") if Path(p).is_file()), None
    )
    if debootstrap is None:
        unavailable("building the test base image needs debootstrap: apt-get install debootstrap")
    argv = [
        debootstrap,
        f"--variant={VARIANT}",
        f"--include={','.join(INCLUDE)}",
        SUITE,
        str(root),
        mirror,
    ]
    with log_path.open("w") as log:
        log.write(" ".join(argv) + "\n")
        log.flush()
        try:
            proc = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, timeout=BUILD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"debootstrap did not finish in {BUILD_TIMEOUT_S} s; see {log_path}") from None
    if proc.returncode != 0:
        # The prerequisites are present, so this is a real failure (mirror unreachable, bad recipe).
        raise RuntimeError(
            f"debootstrap of {SUITE} from {mirror} failed (exit {proc.returncode}); see {log_path}:\n"
            f"{_log_tail(log_path)}"
        )


def _import(root: Path, tag: str) -> None:
    changes = [
        f"ENV PATH={BASE_PATH_ENV}",
        "ENV LANG=C.UTF-8",
        f"LABEL io.schedgen.test=base io.schedgen.test.recipe={BASE_RECIPE_VERSION}",
        'CMD ["bash"]',
    ]
    import_argv = ["docker", "import", *(a for c in changes for a in ("--change", c)), "-", tag]
    tar = subprocess.Popen(
        ["tar", "--numeric-owner", "-C", str(root), "-c", "."],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert tar.stdout is not None
    imported = subprocess.run(import_argv, stdin=tar.stdout, capture_output=True, text=True, check=False)
    tar.stdout.close()
    tar_err = tar.communicate()[1].decode(errors="replace")
    if tar.returncode != 0 or imported.returncode != 0:
        raise RuntimeError(
            f"importing the base rootfs as {tag} failed: tar exit {tar.returncode} {tar_err.strip()}; "
            f"docker import exit {imported.returncode} {imported.stderr.strip()}"
        )


def base_image() -> str:
    """The Debian bookworm minbase image (python3, venv, CA certificates), built once per recipe."""
    require_docker()
    tag = base_tag()
    if image_exists(tag):
        return tag
    with file_lock("base"):
        if image_exists(tag):
            return tag
        if os.geteuid() != 0:
            unavailable(f"building the test base image {tag} needs root (debootstrap): run the tests as root")
        mirror = debian_mirror()
        log_path = WORK_DIR / "schedgen-test-base.log"
        work = Path(tempfile.mkdtemp(prefix="schedgen-test-base-", dir=WORK_DIR))
        root = work / "root"
        started = time.monotonic()
        _progress(f"building {tag}: debootstrap {VARIANT} {SUITE} from {mirror} (about 70 s; log {log_path})")
        try:
            _debootstrap(root, mirror, log_path)
            _progress(f"debootstrap done in {time.monotonic() - started:.0f} s; importing {tag}")
            _prepare_rootfs(root)
            _import(root, tag)
        finally:
            _unmount_below(work)
            shutil.rmtree(work, ignore_errors=True)
        _progress(f"built {tag} in {time.monotonic() - started:.0f} s")
    return tag


# --- Stand-ins for the official images ---------------------------------------------------------------


def _dir_digest(directory: Path) -> list[list[str]]:
    """Relative path, executable bit and content hash of every file (what `docker build` sees)."""
    rows = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        mode = "x" if path.stat().st_mode & 0o111 else "-"
        content = hashlib.sha256(path.read_bytes()).hexdigest()
        rows.append([path.relative_to(directory).as_posix(), mode, content])
    return rows


def standin_tag(name: str, base: str) -> str:
    """Tag of the stand-in `name` built on `base`: a hash of its build directory and the base tag."""
    return f"{REPO}/{name}:{_digest({'base': base, 'files': _dir_digest(IMAGES_DIR / name)})}"


def standin_image(name: str) -> str:
    """A local stand-in for the official `name` image ("postgres" or "redis"), built once per content."""
    if name not in STANDINS:
        raise ValueError(f"unknown stand-in image {name!r}: choose one of {', '.join(STANDINS)}")
    base = base_image()
    tag = standin_tag(name, base)
    if image_exists(tag):
        return tag
    with file_lock(name):
        if image_exists(tag):
            return tag
        build_dir = IMAGES_DIR / name
        log_path = WORK_DIR / f"schedgen-test-{name}.log"
        argv = [
            "docker",
            "build",
            "--build-arg",
            f"BASE={base}",
            "--label",
            f"io.schedgen.test={name}",
            "--tag",
            tag,
            str(build_dir),
        ]
        started = time.monotonic()
        _progress(f"building {tag} from {build_dir} (apt-get in the build; log {log_path})")
        with log_path.open("w") as log:
            log.write(" ".join(argv) + "\n")
            log.flush()
            try:
                proc = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, timeout=BUILD_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                raise RuntimeError(f"building {tag} took over {BUILD_TIMEOUT_S} s; see {log_path}") from None
        if proc.returncode != 0:
            # A broken Dockerfile or an unreachable mirror, not a missing prerequisite: fail loudly.
            raise RuntimeError(
                f"docker build of {tag} failed (exit {proc.returncode}); see {log_path}:\n"
                f"{_log_tail(log_path)}"
            )
        _progress(f"built {tag} in {time.monotonic() - started:.0f} s")
    return tag


def main() -> int:
    """Build (or confirm) every test image; for warming a machine before a test run."""
    import pytest

    try:
        for name in STANDINS:
            print(standin_image(name))
    except (pytest.skip.Exception, pytest.fail.Exception, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
