"""Static checks that secrets stay secret: no password, token or webhook URL written into a rendered file
outside the secrets files (compose, Kubernetes, local and the units)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from schedgen_ops.ops.readiness.context import Context
from schedgen_ops.ops.readiness.evidence import Verdict, container_label, manifest_evidence, per_service
from schedgen_ops.ops.readiness.inspect import containers, pod_template, service_command
from schedgen_ops.ops.readiness.model import Evidence, Finding, NotApplicable, check
from schedgen_ops.ops.readiness.tree import RenderedTree, keyed

SECRET_KEY = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|ACCESS_KEY|PRIVATE_KEY|CREDENTIALS?)$", re.I)
URL_CREDENTIALS = re.compile(r"^[a-z][a-z0-9+.-]*://[^:/@\s]*:([^@\s]+)@", re.I)
_INTERPOLATED = re.compile(r"^\$\{[^}]+\}$|^\$[A-Za-z_][A-Za-z0-9_]*$")
_WEBHOOK_ENV = re.compile(r"WEBHOOK_URL\s*[=:]\s*\"?(https?://\S+)", re.I)

# --- literal secrets -------------------------------------------------------------------------------


def _secret_files(tree: RenderedTree) -> set[str]:
    """Files that may hold secret values: compose secrets, secretGenerator inputs, */secrets/ files."""
    allowed = {rel for rel in tree.files("**/*") if "secret" in rel.lower()}
    if tree.has_compose:
        for spec in (tree.compose.get("secrets") or {}).values():
            if isinstance(spec, dict) and spec.get("file"):
                allowed.add(str((Path("compose") / str(spec["file"])).as_posix()))
    for rel, kustomization in tree.kustomizations():
        base = Path(rel).parent
        for gen in kustomization.get("secretGenerator") or []:
            for entry in [*(gen.get("envs") or []), *(gen.get("files") or [])]:
                allowed.add((base / str(entry).split("=")[-1]).as_posix())
    return {str(Path(p)).replace("\\", "/") for p in allowed} | {_norm(p) for p in allowed}


def _norm(rel: str) -> str:
    parts: list[str] = []
    for part in rel.split("/"):
        if part == "..":
            if parts:
                parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    return "/".join(parts)


def _literal_secret(key: str, value: Any) -> bool:
    text = "" if value is None else str(value).strip()
    if not text or _INTERPOLATED.match(text) or text.startswith("/run/secrets/"):
        return False
    if key.upper().endswith("_FILE"):
        return False
    match = URL_CREDENTIALS.match(text)
    if match:
        return not _INTERPOLATED.match(match.group(1))
    return bool(SECRET_KEY.search(key))


@check(
    "no-literal-secrets",
    title="No literal secret outside the secrets file",
    category="security",
    severity="danger",
    kind="static",
    why="Rendered files are committed, copied and attached to tickets; a password in them is a leaked "
    "password.",
    fix="Reference secrets (compose secrets/env_file, Kubernetes Secret refs) instead of writing values.",
)
def check_no_literal_secrets(ctx: Context) -> list[Finding]:
    tree = ctx.static_tree()
    out: list[Finding] = []
    allowed = _secret_files(tree)
    values = {k: v for k, v in (ctx.secret_values or {}).items() if len(v) >= 8}
    scanned = 0
    for rel in tree.files("**/*"):
        if _norm(rel) in allowed:
            continue
        try:
            text = tree.text(rel)
        except UnicodeDecodeError:
            continue
        scanned += 1
        for name, value in values.items():
            if value in text:
                ev = Evidence(rel, _line(text, text.index(value)), "<redacted>")
                out.append(Finding(False, f"{rel} contains the value of secret {name}", ev))
    out += per_service(ctx, _compose_literals)
    for manifest in ctx.manifests():
        literal = manifest.doc.get("data") or manifest.doc.get("stringData")
        if manifest.kind == "Secret" and _norm(manifest.file) not in allowed and literal:
            msg = f"{manifest.ref} carries secret data in {manifest.file}"
            out.append(Finding(False, msg, manifest_evidence(manifest, "data", "<redacted>")))
        tmpl = pod_template(manifest)
        if tmpl is None:
            continue
        for path, container in containers(tmpl):
            for index, item in enumerate(container.get("env") or []):
                if "value" in item and _literal_secret(str(item.get("name", "")), item["value"]):
                    msg = f"{container_label(tmpl, container)} sets {item.get('name')} literally"
                    ev = manifest_evidence(manifest, f"{path}.env[{index}].value", "<redacted>")
                    out.append(Finding(False, msg, ev))
    if not out:
        detail = f"{scanned} files scanned" + (f" for {len(values)} secret values" if values else "")
        out.append(Finding(True, f"no literal secrets ({detail})", Evidence(None, None, sorted(allowed))))
    return out


def _compose_literals(name: str, svc: dict[str, Any]) -> Iterator[Verdict]:
    """A compose service's secret-looking environment values and Redis passwords written as they are."""
    for key, value in keyed(svc.get("environment")).items():
        if _literal_secret(key, value):
            yield Verdict(False, f"{name} sets {key} literally", ("environment", key), "<redacted>")
    args = service_command(svc)
    for index, arg in enumerate(args[:-1]):
        if arg in ("--requirepass", "--masterauth") and not _INTERPOLATED.match(args[index + 1]):
            yield Verdict(False, f"{name} passes {arg} literally", "command", "<redacted>")


def _line(text: str, index: int) -> str:
    """Where a match sits, as evidence names it: ``line N``."""
    number = text[:index].count("\n") + 1
    return f"line {number}"


# --- webhooks ----------------------------------------------------------------------------------------


@check(
    "webhook-urls-secret",
    title="Webhook URLs are not written into rendered files",
    category="security",
    severity="danger",
    kind="static",
    why="A Slack or Mattermost hook's URL is its credential: anyone who reads a rendered file, a ConfigMap "
    "or a unit could post as the on-call channel (or read what it receives).",
    fix="Keep them in .schedgen/secrets.env (`schedgen secrets set ALERT_WEBHOOK_URL` / BACKUP_WEBHOOK_URL): "
    "Alertmanager reads a url_file, units and CronJobs read them from secrets.",
)
def check_webhook_urls_secret(ctx: Context) -> list[Finding]:
    tree = ctx.static_tree()
    out: list[Finding] = []
    scanned = 0
    for rel in tree.files("**/alertmanager*.y*ml"):
        if "secret" in rel:
            continue
        scanned += 1
        for doc in tree.docs(rel):
            for receiver in (doc or {}).get("receivers") or []:
                for index, hook in enumerate(receiver.get("webhook_configs") or []):
                    literal = "url" in hook
                    out.append(
                        Finding(
                            not literal,
                            f"{rel}: receiver {receiver.get('name')} "
                            + ("writes its URL" if literal else "reads url_file"),
                            Evidence(
                                rel,
                                f"receivers.{receiver.get('name')}.webhook_configs[{index}]",
                                "<redacted>" if literal else hook.get("url_file"),
                            ),
                        )
                    )
    for rel in [*tree.files("systemd/*"), *tree.files("kubernetes/*.y*ml"), *tree.files("compose/*.y*ml")]:
        scanned += 1
        match = _WEBHOOK_ENV.search(tree.text(rel))
        if match:
            ev = Evidence(rel, _line(tree.text(rel), match.start()), "<redacted>")
            out.append(Finding(False, f"{rel} sets a webhook URL literally", ev))
    if not out:
        if not scanned:
            raise NotApplicable("no Alertmanager config, units or manifests rendered")
        out.append(
            Finding(True, f"no webhook URL in {scanned} rendered files", Evidence(None, None, scanned))
        )
    return out
