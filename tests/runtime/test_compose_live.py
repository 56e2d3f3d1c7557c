"""The stable compose directory: exact copies, modes kept, and only services mounting changed files."""

from __future__ import annotations

from pathlib import Path

from schedgen_ops.runtime.compose_live import live_dir, services_mounting, sync


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_sync_copies_reports_changes_and_keeps_secret_modes(tmp_path: Path) -> None:
    first = _tree(
        tmp_path / "r1", {"docker-compose.yml": "a", "postgres/postgresql.conf": "x", "secrets/app.env": "k"}
    )
    (first / "secrets" / "app.env").chmod(0o600)
    live = tmp_path / ".schedgen" / "compose"
    assert sync(first, live) == {"docker-compose.yml", "postgres/postgresql.conf", "secrets/app.env"}
    assert (live / "secrets" / "app.env").stat().st_mode & 0o777 == 0o600
    assert sync(first, live) == set()  # same content: nothing changed, nothing rewritten
    second = _tree(tmp_path / "r2", {"docker-compose.yml": "a", "postgres/postgresql.conf": "y"})
    assert sync(second, live) == {"postgres/postgresql.conf", "secrets/app.env"}
    assert (live / "postgres" / "postgresql.conf").read_text() == "y"
    assert not (live / "secrets" / "app.env").exists()  # a file the release no longer has is gone


def test_services_mounting_changed_files_by_bind_mount_directory_or_env_file() -> None:
    services = {
        "postgres": {
            "volumes": ["postgres-data:/var/lib/postgresql/data", "./postgres/postgresql.conf:/etc/p.conf:ro"]
        },
        "prometheus": {"volumes": ["./prometheus:/etc/prometheus:ro"]},
        "redis": {"env_file": ["secrets/redis.env"], "volumes": ["./redis/redis.conf:/r.conf:ro"]},
        "api": {"env_file": "secrets/app.env", "volumes": ["uploads:/data/uploads"]},
    }
    assert services_mounting(services, {"postgres/postgresql.conf"}) == {"postgres"}
    assert services_mounting(services, {"prometheus/rules/a.yml"}) == {"prometheus"}
    assert services_mounting(services, {"secrets/redis.env", "secrets/app.env"}) == {"redis", "api"}
    assert services_mounting(services, {"docker-compose.yml", "uploads/x"}) == set()


def test_the_live_directory_belongs_to_the_project_of_the_release() -> None:
    assert live_dir(Path("/p/.schedgen/releases/r1/tree")) == Path("/p/.schedgen/compose")
    assert live_dir(Path("/elsewhere/tree")) is None
