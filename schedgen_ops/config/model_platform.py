"""The host, ports, kubernetes and images sections: where the stack runs and what it runs."""

from __future__ import annotations

from pydantic import Field, field_validator

from schedgen_ops.config.model_common import NAME_RE, Strict, private_cidr
from schedgen_ops.config.values import ImageRef, KubeClassName


class PortsConfig(Strict):
    api: int = Field(ge=1, le=65535)
    postgres: int = Field(ge=1, le=65535)
    redis: int = Field(ge=1, le=65535)
    minio: int = Field(ge=1, le=65535)
    prometheus: int = Field(ge=1, le=65535)
    alertmanager: int = Field(ge=1, le=65535)
    grafana: int = Field(ge=1, le=65535)


class HostConfig(Strict):
    cpus: float = Field(gt=0)
    memory_mb: int = Field(gt=0)
    reservation_ratio: float = Field(gt=0, le=1, description="Reservation = limit x ratio.")


class KubernetesConfig(Strict):
    namespace: str
    storage_class: KubeClassName = Field(description="StorageClass for volumes; empty = the cluster default.")
    ingress_class: KubeClassName
    ingress_cidrs: list[str] = Field(
        description="Pod network(s) of the ingress controller: the only peers whose X-Forwarded-For the "
        "api believes (set it to your cluster's pod CIDR)."
    )

    @field_validator("ingress_cidrs")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("name at least one CIDR (the ingress controller's pod network)")
        return [private_cidr(cidr) for cidr in value]

    @field_validator("namespace")
    @classmethod
    def _dns_label(cls, value: str) -> str:
        if not NAME_RE.fullmatch(value) or len(value) > 63:
            raise ValueError(f"{value!r} is not a DNS label (lowercase letters, digits, '-')")
        return value


class ImageConfig(Strict):
    """Every image the stack runs besides postgres.image, redis.image and minio.image (one visible set)."""

    service: ImageRef = Field(description="Our image repository; the tag is always the toolkit version.")
    traefik: ImageRef
    prometheus: ImageRef
    alertmanager: ImageRef
    grafana: ImageRef
    postgres_exporter: ImageRef
    redis_exporter: ImageRef
    cloudnative_pg: ImageRef = Field(description="Kubernetes HA Postgres (CloudNativePG Cluster imageName).")
    redis_operator: ImageRef = Field(description="Kubernetes Redis replication (OT redis-operator).")
    redis_sentinel: ImageRef = Field(description="Kubernetes Redis Sentinel (OT redis-operator).")
