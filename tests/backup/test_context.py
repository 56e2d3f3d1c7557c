"""Where backup commands look: option > SCHEDGEN_* environment > project configuration > default."""

from __future__ import annotations

import pytest

from schedgen_ops.errors import SchedgenError
from schedgen_ops.ops.backup.context import resolve_context
from schedgen_ops.ops.backup.targets import ComposeTarget, KubernetesTarget, LocalTarget
from schedgen_ops.ops.backup.writers import ComposeWriters, KubernetesWriters, NoWriters


@pytest.fixture
def project(tmp_path, monkeypatch):
    for name in (
        "SCHEDGEN_BACKUP_DIR",
        "SCHEDGEN_DATABASE_URL",
        "SCHEDGEN_REDIS_URL",
        "SCHEDGEN_STORAGE_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "schedgen.yaml").write_text("profile: small\nbackup:\n  keep_daily: 3\n  dir: nightly\n")
    return tmp_path


def test_the_profile_and_schedgen_yaml_give_the_defaults(project):
    ctx = resolve_context(project)
    assert ctx.profile == "small"
    assert ctx.directory == project / "nightly"
    assert (ctx.policy.keep_daily, ctx.policy.keep_weekly, ctx.policy.keep_monthly) == (3, 4, 12)
    assert isinstance(ctx.writers(), NoWriters)  # no local runtime runs for this project
    with pytest.raises(SchedgenError, match="no database URL"):
        ctx.target()


def test_environment_beats_the_config_and_options_beat_the_environment(project, tmp_path, monkeypatch):
    monkeypatch.setenv("SCHEDGEN_BACKUP_DIR", str(tmp_path / "from-env"))
    monkeypatch.setenv("SCHEDGEN_DATABASE_URL", "postgresql://u@h/envdb")
    ctx = resolve_context(project)
    assert ctx.directory == tmp_path / "from-env"
    target = ctx.target()
    assert isinstance(target, LocalTarget) and target.conn.dbname == "envdb"

    ctx = resolve_context(project, directory=tmp_path / "opt", database_url="postgresql://u@h/optdb")
    assert ctx.directory == tmp_path / "opt"
    assert ctx.database_url.endswith("/optdb")


def test_compose_and_kubernetes_targets_come_from_the_config(project):
    compose = resolve_context(project, target="compose")
    target = compose.target()
    assert isinstance(target, ComposeTarget) and target.project.name == "schedgen"
    assert isinstance(compose.writers(), ComposeWriters)
    kube = resolve_context(project, target="kubernetes")
    assert isinstance(kube.target(), KubernetesTarget) and isinstance(kube.writers(), KubernetesWriters)
    with pytest.raises(SchedgenError, match="unknown target 'swarm'") as info:
        resolve_context(project, target="swarm")
    assert info.value.exit_code == 2
