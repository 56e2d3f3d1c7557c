"""Our own templates against our own checklist: `schedgen checklist` on every rendered profile (CI runs this).

Every profile must pass every danger check (the CI gate). Accepted risks are per-resource exemption labels
in the templates, each with its reason, which the checklist reports; the checks are never weakened.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from schedgen_ops.cli.main import main

PROFILES = ("small", "medium", "large")

#: A deployment-wide acknowledgement for the suppression/min-score test (any warning-level check will do).
IGNORED = {"probes-distinct": "accepted for this test, exporters expose one endpoint"}


def _checklist(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    code = main(list(args))
    out = capsys.readouterr().out
    return code, json.loads(out)


def _danger_failures(doc: dict) -> set[tuple[str, str, str]]:
    out = set()
    for result in doc["results"]:
        if result["severity"] == "danger" and result["status"] in ("fail", "error", "pending"):
            bad = [e for e in result["evidence"] if not e["ok"]] or [
                {"file": None, "path": result["message"]}
            ]
            for ev in bad:
                out.add((result["id"], str(ev["file"]), str(ev["path"])))
    return out


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each profile rendered once with `schedgen render`'s library into its own project."""
    from schedgen_ops.config.loader import load_config
    from schedgen_ops.config.secrets import ensure_secrets
    from schedgen_ops.render.engine import render_tree

    trees = {}
    for profile in PROFILES:
        project = tmp_path_factory.mktemp(f"project-{profile}")
        secrets, _ = ensure_secrets(project)
        render_tree(
            load_config(project, profile=profile), secrets, "all", project / "deploy", project_dir=project
        )
        trees[profile] = project
    return trees


@pytest.mark.parametrize("profile", PROFILES)
def test_rendered_tree_passes_every_danger_check_and_shows_the_exemption(
    rendered: dict[str, Path], capsys: pytest.CaptureFixture[str], profile: str
) -> None:
    project = rendered[profile]
    code, doc = _checklist(
        capsys, "--project", str(project), "checklist", "--dir", str(project / "deploy"), "--json"
    )
    assert doc["profile"] == profile and code == doc["exit_code"] == 0
    assert _danger_failures(doc) == set()
    # Everything the checklist can judge statically was judged: no check errored.
    assert [r["id"] for r in doc["results"] if r["status"] == "error"] == []
    # The one root process (the compose volume-init one-shot) is an exemption with its reason, not a pass.
    root = next(r for r in doc["results"] if r["id"] == "run-as-non-root")
    exempt = [e for e in root["evidence"] if e.get("exempt")]
    assert [e["path"] for e in exempt] == ["services.volume-init.user"]
    assert "network none, cap_drop ALL + CHOWN only" in exempt[0]["exempt"]


@pytest.mark.parametrize("profile", PROFILES)
def test_rendered_profile_passes_every_danger_check(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, profile: str
) -> None:
    """The CI gate: `schedgen checklist --profile P` renders and must exit 0 (no danger check failing)."""
    code, doc = _checklist(
        capsys, "--project", str(tmp_path), "checklist", "--profile", profile, "--format", "json"
    )
    assert _danger_failures(doc) == set()
    assert code == 0


def test_evicting_queue_redis_is_refused_by_config(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`--set redis.maxmemory_policy=allkeys-lru`: the config model refuses it before anything renders."""
    code = main(["--project", str(tmp_path), "checklist", "--set", "redis.maxmemory_policy=allkeys-lru"])
    err = capsys.readouterr().err
    assert code == 1
    assert "redis.maxmemory_policy" in err


def test_evicting_queue_redis_in_a_rendered_tree_fails_with_exit_3(
    rendered: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A hand-edited tree (the way the old setup got allkeys-lru) fails queue-redis-durable: exit 3."""
    tree = tmp_path / "deploy"
    shutil.copytree(rendered["medium"] / "deploy", tree)
    conf = tree / "compose" / "redis" / "redis.conf"
    conf.write_text(conf.read_text().replace("maxmemory-policy noeviction", "maxmemory-policy allkeys-lru"))
    code, doc = _checklist(
        capsys,
        "--project",
        str(rendered["medium"]),
        "checklist",
        "--dir",
        str(tree),
        "--target",
        "compose",
        "--json",
    )
    assert code == 3
    result = next(r for r in doc["results"] if r["id"] == "queue-redis-durable")
    assert result["status"] == "fail"
    bad = [e for e in result["evidence"] if not e["ok"]]
    assert bad[0]["file"] == "compose/redis/redis.conf"
    assert "allkeys-lru" in bad[0]["message"]


def test_min_score_exit_4_and_formats_from_the_cli(
    rendered: dict[str, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    project = rendered["small"]
    (project / "schedgen.yaml").write_text(
        "profile: small\nchecklist:\n  ignore:\n"
        + "".join(f"    {check}: {reason}\n" for check, reason in IGNORED.items())
    )
    args = ["--project", str(project), "checklist", "--dir", str(project / "deploy")]
    code, doc = _checklist(capsys, *args, "--json")
    assert code == 0, [r["id"] for r in doc["results"] if r["status"] == "fail"]
    assert {r["suppressed_reason"] for r in doc["results"] if r["status"] == "suppressed"} == set(
        IGNORED.values()
    )
    assert main([*args, "--min-score", "100", "--format", "junit", "-o", str(tmp_path / "r.xml")]) == 4
    assert (tmp_path / "r.xml").read_text().startswith("<?xml")
    capsys.readouterr()
    assert main([*args, "--format", "table"]) == 0
    assert "score" in capsys.readouterr().out


@pytest.mark.parametrize(("bind", "passes"), [("127.0.0.1:8000", True), ("0.0.0.0:8000", False)])
def test_edge_off_is_safe_only_with_the_api_bound_to_loopback(
    tmp_path: Path, bind: str, passes: bool
) -> None:
    """edge.enabled false publishes the api itself: on 127.0.0.1 for a local proxy, never everywhere."""
    from schedgen_ops.config.loader import load_config
    from schedgen_ops.config.secrets import ensure_secrets
    from schedgen_ops.ops.readiness import Context, RenderedTree
    from schedgen_ops.ops.readiness.evaluate import run_check
    from schedgen_ops.ops.readiness.registry import get
    from schedgen_ops.render.engine import render_tree

    secrets, _ = ensure_secrets(tmp_path)
    overrides = ["edge.enabled=false", f"edge.api_bind={bind}", "monitoring.enabled=false"]
    config = load_config(tmp_path, profile="small", overrides=overrides)
    render_tree(config, secrets, "compose", tmp_path / "deploy", project_dir=tmp_path)
    model = yaml.safe_load((tmp_path / "deploy/compose/docker-compose.yml").read_text())
    assert "traefik" not in model["services"] and "prometheus" not in model["services"]
    ctx = Context(project=tmp_path, tree=RenderedTree(tmp_path / "deploy"), profile="small")
    result = run_check(get("only-proxy-publishes"), ctx)
    assert (result.status == "pass") is passes, result
    if not passes:
        assert any("all interfaces with the edge off" in f.message for f in result.findings if not f.ok)


@pytest.mark.parametrize("columns", [80, 160])
def test_the_table_fits_the_terminal(
    rendered: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    columns: int,
) -> None:
    """At 80 columns evidence gets its own indented lines (not a 16-column cell); wide terminals keep
    the table. Either way no line is wider than the terminal and every check id is on one line."""
    monkeypatch.setenv("COLUMNS", str(columns))
    project = rendered["small"]
    assert main(["--project", str(project), "checklist", "--dir", str(project / "deploy")]) in (0, 3)
    shown = capsys.readouterr().out
    lines = shown.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= columns
    _, doc = _checklist(
        capsys, "--project", str(project), "checklist", "--dir", str(project / "deploy"), "--json"
    )
    for result in doc["results"]:
        assert any(result["id"] in line for line in lines), result["id"]
    if columns == 80:
        assert "┃" not in shown  # no table
        fix = next(line for line in lines if line.strip().startswith("fix:"))
        assert fix.startswith("      fix: ") and len(fix.rstrip()) > 60  # its own line, the whole width
    else:
        assert "┃ evidence" in shown
