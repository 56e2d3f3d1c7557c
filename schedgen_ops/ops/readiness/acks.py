"""Acknowledgements of manual checklist items, stored in the project (.schedgen/checklist-acks.json)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

from schedgen_ops.errors import SchedgenError
from schedgen_ops.layout import ProjectLayout
from schedgen_ops.ops.readiness.model import Acknowledgement


def acks_path(project: Path) -> Path:
    return ProjectLayout.of(project).checklist_acks


def load_acks(project: Path) -> dict[str, Acknowledgement]:
    """Acknowledgements by check id ({} when none were recorded)."""
    path = acks_path(project)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {
            str(check_id): Acknowledgement(by=str(item["by"]), note=str(item["note"]), at=str(item["at"]))
            for check_id, item in (data.get("acks") or {}).items()
        }
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SchedgenError(
            f"{path} is not a valid acknowledgements file: {exc}",
            code="bad_acks_file",
            hint="fix or delete it, then re-run `schedgen checklist ack`",
        ) from exc


def record_ack(
    project: Path, check_id: str, by: str, note: str, now: datetime | None = None
) -> Acknowledgement:
    """Record (or replace) the acknowledgement of a manual item, written atomically."""
    from schedgen_ops.ops.readiness import registry

    try:
        item = registry.get(check_id)
    except KeyError:
        raise SchedgenError(
            f"unknown checklist item {check_id!r}",
            code="unknown_check",
            hint="`schedgen checklist list` shows every id",
        ) from None
    if item.kind != "manual":
        raise SchedgenError(
            f"{check_id} is a {item.kind} check, proven by evidence, not acknowledged by hand",
            code="not_manual",
            hint="only manual items can be acknowledged; suppress with checklist.ignore and a reason instead",
        )
    if not by.strip() or not note.strip():
        raise SchedgenError(
            "an acknowledgement needs --by and --note", code="bad_ack", hint="say who and why"
        )
    acks = load_acks(project)
    stamp = (now or datetime.now(UTC)).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    ack = Acknowledgement(by=by.strip(), note=note.strip(), at=stamp)
    acks[check_id] = ack
    path = acks_path(project)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    payload = {"acks": {k: v.to_dict() for k, v in sorted(acks.items())}}
    tmp.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return ack
