"""The api's routes, one module per area, each an `APIRouter`; `ROUTERS` is their order in the app
(and so in the OpenAPI document): uploads, job status and events, calendars, ops, probes."""

from __future__ import annotations

from fastapi import APIRouter

from schedgen_ops.service.routes import calendar, jobs, ops, probes, uploads

ROUTERS: tuple[APIRouter, ...] = (uploads.router, jobs.router, calendar.router, ops.router, probes.router)
