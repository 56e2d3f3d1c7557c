"""The student page served by the api at /: upload timetables, preview them, take the calendar along."""

from schedgen_ops.service.web.routes import mount

__all__ = ["mount"]
