"""The api assembled from its parts (`service/app.py`): the same operations, in the same order, with the
same ids, answers and parameters as the single `create_app` it replaced; and the metrics route label of a
request refused before routing (429, 401) still names its route when routes live on included routers."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from starlette.requests import Request

from schedgen_ops.service.app import create_app
from schedgen_ops.service.middleware import _route_template
from schedgen_ops.service.settings import ServiceSettings

_API = ("202", "401", "404", "409", "413", "415", "422", "429", "503")
_READ = ("200", *_API[1:])
_OPS = ("400", *_READ)

# (method, path, operationId, response codes, parameters) in the document's order.
OPERATIONS = [
    ("POST", "/api/uploads", "upload_api_uploads_post", _API, []),
    ("GET", "/api/jobs/{job_id}", "job_status_api_jobs__job_id__get", ("304", *_READ), ["job_id"]),
    ("GET", "/api/jobs/{job_id}/events", "job_events_api_jobs__job_id__events_get", _READ, ["job_id"]),
    (
        "GET",
        "/api/jobs/{job_id}/calendar.ics",
        "job_calendar_api_jobs__job_id__calendar_ics_get",
        _READ,
        ["job_id", "from", "until", "semester", "group", "exam_duration_min"],
    ),
    ("GET", "/api/queue", "queue_stats_api_queue_get", _READ, []),
    (
        "POST",
        "/api/ops/loadtest-keys",
        "mint_loadtest_keys_api_ops_loadtest_keys_post",
        ("201", "400", *_API[1:]),
        [],
    ),
    (
        "DELETE",
        "/api/ops/loadtest-keys/{label}",
        "revoke_loadtest_keys_api_ops_loadtest_keys__label__delete",
        _OPS,
        ["label"],
    ),
    ("GET", "/healthz", "healthz_healthz_get", ("200",), []),
    ("GET", "/readyz", "readyz_readyz_get", ("200", "503"), []),
    ("GET", "/metrics", "metrics_endpoint_metrics_get", ("200",), []),
    (
        "POST",
        "/api/calendars/preview",
        "calendar_preview_api_calendars_preview_post",
        ("200", "400", "404", "413", "422", "429", "503"),
        [],
    ),
    (
        "POST",
        "/api/subscriptions",
        "create_subscription_api_subscriptions_post",
        ("201", "400", "404", "413", "422", "429", "503"),
        [],
    ),
]


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return create_app(ServiceSettings.model_validate({"api_docs": True}))


def test_the_openapi_document_has_the_same_operations(app: FastAPI) -> None:
    doc: dict[str, Any] = app.openapi()
    found = [
        (
            method.upper(),
            path,
            op["operationId"],
            tuple(sorted(op["responses"])),
            [p["name"] for p in op.get("parameters", [])],
        )
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
    ]
    expected = [(m, p, i, tuple(sorted(r)), params) for m, p, i, r, params in OPERATIONS]
    assert found == expected
    upload = doc["paths"]["/api/uploads"]["post"]
    assert upload["requestBody"]["content"]["multipart/form-data"]["schema"]["required"] == ["file"]
    assert doc["paths"]["/api/jobs/{job_id}"]["get"]["responses"]["401"]["content"]["application/json"][
        "schema"
    ] == {"$ref": "#/components/schemas/ErrorResponse"}


def _scope(app: FastAPI, method: str, path: str) -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "root_path": "", "headers": [], "app": app}


@pytest.mark.parametrize(
    ("method", "path", "label"),
    [
        ("POST", "/api/uploads", "/api/uploads"),
        ("GET", "/api/jobs/0123456789abcdef0123456789abcdef", "/api/jobs/{job_id}"),
        ("GET", "/api/jobs/x/calendar.ics", "/api/jobs/{job_id}/calendar.ics"),
        ("DELETE", "/api/ops/loadtest-keys/lt-1", "/api/ops/loadtest-keys/{label}"),
        ("GET", "/healthz", "/healthz"),
        ("GET", "/", "/"),
        ("POST", "/api/jobs/x", "unmatched"),  # the path matches but not the method
        ("GET", "/nope", "unmatched"),
    ],
)
def test_a_request_refused_before_routing_is_labelled_by_its_route(
    app: FastAPI, method: str, path: str, label: str
) -> None:
    assert _route_template(app, Request(_scope(app, method, path))) == label
