"""The backup section: the daily logical backup's schedule and retention, and point-in-time recovery."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from schedgen_ops.config.model_common import Strict, no_webhook_here
from schedgen_ops.config.values import Bucket, RelativePath


class PitrConfig(Strict):
    """Point-in-time recovery: pgBackRest archives WAL continuously (docs/BACKUP.md)."""

    enabled: bool = Field(False, description="Archive WAL with pgBackRest (on for medium and large).")
    archive_timeout_s: int = Field(
        60, ge=1, le=3600, description="Postgres archive_timeout: the most committed work a lost disk costs."
    )
    full_weekday: int = Field(
        6, ge=0, le=6, description="Weekday (0 = Monday) of the full backup; other days take a differential."
    )
    retention_full: int = Field(2, ge=1, description="Full backups kept (with their WAL) in the repository.")
    repo: Literal["local", "s3"] = Field("local", description="Repository: local disk or the S3 bucket.")
    repo_path: str = Field(
        "", description="Local repository directory (default: .schedgen/pgbackrest/repo in the project)."
    )
    s3_bucket: Bucket = Field("schedgen-pitr", description="Bucket of an s3 repository (MinIO or S3).")
    process_max: int = Field(2, ge=1, le=32, description="pgBackRest parallel processes.")


class BackupConfig(Strict):
    hour: int = Field(ge=0, le=23, description="Daily backup time (UTC), hour.")
    minute: int = Field(ge=0, le=59)
    keep_daily: int = Field(ge=1)
    keep_weekly: int = Field(ge=0)
    keep_monthly: int = Field(ge=0)
    dir: RelativePath = Field(description="Backup directory (relative to the project).")
    webhook_url: str = Field(
        "",
        description="Always empty: the failure webhook of scheduled backups is a secret "
        "(`schedgen secrets set BACKUP_WEBHOOK_URL`; falls back to ALERT_WEBHOOK_URL).",
    )
    pitr: PitrConfig = Field(default_factory=lambda: PitrConfig.model_validate({}))

    @field_validator("webhook_url")
    @classmethod
    def _webhook(cls, value: str) -> str:
        return no_webhook_here(value, "BACKUP_WEBHOOK_URL")

    @property
    def cron(self) -> str:
        """The schedule as a cron expression (cron file, Kubernetes CronJob)."""
        return f"{self.minute} {self.hour} * * *"

    @property
    def on_calendar(self) -> str:
        """The same schedule as a systemd OnCalendar expression."""
        return f"*-*-* {self.hour:02d}:{self.minute:02d}:00 UTC"
