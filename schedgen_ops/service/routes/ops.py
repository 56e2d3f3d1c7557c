"""Ops-token endpoints: queue statistics, and the short-lived load-test API keys CI mints and revokes
over HTTP (it cannot reach the stack's database)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Depends, Path, Request

from schedgen_ops.service import clients, ledger, queue
from schedgen_ops.service.api_errors import ERRORS, ApiError
from schedgen_ops.service.api_state import State
from schedgen_ops.service.auth import OPS_ONLY, is_ops, require_ops
from schedgen_ops.service.schemas import ErrorResponse, QueueView

log = logging.getLogger("schedgen.api")
router = APIRouter()

_OPS_ERRORS = {**ERRORS, 400: {"model": ErrorResponse, "description": "The body is not JSON."}}


@router.get("/api/queue", response_model=QueueView, responses=ERRORS, summary="Queue statistics (ops token)")
def queue_stats(request: Request, state: State) -> dict[str, Any]:
    if not is_ops(state.settings, request):
        raise ApiError(401, "unauthorized", OPS_ONLY)
    stats = queue.stats(state.ctx.redis)
    with state.ctx.pool.connection() as conn:
        stats["ledger"] = ledger.status_counts(conn)
    return stats


@router.post(
    "/api/ops/loadtest-keys",
    status_code=201,
    response_model=clients.MintedKeys,
    responses=_OPS_ERRORS,
    dependencies=[Depends(require_ops)],
    summary="Mint short-lived load-test API keys (ops token)",
)
def mint_loadtest_keys(body: clients.MintKeysRequest, state: State) -> clients.MintedKeys:
    label = body.label or clients.new_loadtest_label()
    with state.ctx.pool.connection() as conn:
        keys, expires_at = clients.mint_loadtest_keys(conn, label, body.count, body.ttl_s)
    log.info("minted load-test keys", extra={"label": label, "count": len(keys), "ttl_s": body.ttl_s})
    return clients.MintedKeys(label=label, keys=keys, expires_at=expires_at, ttl_s=body.ttl_s)


@router.delete(
    "/api/ops/loadtest-keys/{label}",
    response_model=clients.RevokedKeys,
    responses=_OPS_ERRORS,
    dependencies=[Depends(require_ops)],
    summary="Revoke a label's load-test API keys (ops token)",
)
def revoke_loadtest_keys(
    state: State,
    label: str = Path(..., pattern=clients.LOADTEST_LABEL_PATTERN, description="The label minted with."),
) -> clients.RevokedKeys:
    with state.ctx.pool.connection() as conn:
        hashes = clients.revoke_loadtest_keys(conn, label)
    state.keys.forget(hashes)  # this process at once; the others within their 30 s cache
    log.info("revoked load-test keys", extra={"label": label, "count": len(hashes)})
    return clients.RevokedKeys(label=label, revoked=len(hashes))
