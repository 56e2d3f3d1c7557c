"""Read a rendered tree (``schedgen render`` output) into the models the static checks inspect.

Compose: the base file merged with the production overlay, the way ``docker compose -f base -f prod``
merges them (mappings merge, ``ports``/``expose``/... append, ``environment``/``labels`` merge by key,
other values are replaced), with each value traceable to the file it came from.
Kubernetes: every object of every YAML file under kubernetes/.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

COMPOSE_BASE = "compose/docker-compose.yml"
COMPOSE_PROD = "compose/docker-compose.prod.yml"
K8S_DIR = "kubernetes"

#: Compose keys whose sequences are concatenated (not replaced) by an overlay.
_APPENDED = {
    "ports",
    "expose",
    "dns",
    "dns_search",
    "tmpfs",
    "cap_add",
    "cap_drop",
    "security_opt",
    "devices",
}
#: Compose keys whose list form (KEY=VALUE) is merged by key.
_KEYED = {"environment", "labels", "extra_hosts", "sysctls"}


class _Loader(yaml.SafeLoader):
    """Safe loader that understands compose's ``!reset``/``!override`` tags."""


@dataclass(frozen=True)
class Replace:
    """A value tagged ``!reset``/``!override`` in an overlay: it replaces instead of merging."""

    value: Any


def _any_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    value: Any
    if isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_scalar(node)  # type: ignore[arg-type]
        if suffix == "reset" and value in ("", "null", "~"):
            value = None
    return Replace(value) if suffix in ("reset", "override") else value


def unwrap(value: Any) -> Any:
    """Drop `Replace` markers left in a document that was not merged onto anything."""
    if isinstance(value, Replace):
        return unwrap(value.value)
    if isinstance(value, dict):
        return {k: unwrap(v) for k, v in value.items() if not (isinstance(v, Replace) and v.value is None)}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


_Loader.add_multi_constructor("!", _any_tag)


def load_yaml_docs(path: Path) -> list[Any]:
    """Every document of a YAML file (empty documents dropped)."""
    with path.open(encoding="utf-8") as handle:
        return [doc for doc in yaml.load_all(handle, Loader=_Loader) if doc is not None]


def keyed(value: Any) -> dict[str, Any]:
    """Compose ``environment``/``labels`` in either form as a dict (``K=V`` items; bare ``K`` -> None)."""
    if isinstance(value, dict):
        return {str(k): v for k, v in value.items()}
    out: dict[str, Any] = {}
    for item in value or []:
        key, sep, val = str(item).partition("=")
        out[key] = val if sep else None
    return out


def merge_compose(base: Any, overlay: Any, key: str = "") -> Any:
    """Merge a compose overlay onto a base document (compose's documented merge rules, simplified)."""
    if isinstance(overlay, Replace):
        return unwrap(overlay.value)
    if key in _KEYED:
        return {**keyed(base), **keyed(unwrap(overlay))}
    if isinstance(base, dict) and isinstance(overlay, dict):
        merged = dict(base)
        for name, value in overlay.items():
            if isinstance(value, Replace) and value.value is None:
                merged.pop(name, None)
            else:
                merged[name] = merge_compose(base[name], value, str(name)) if name in base else unwrap(value)
        return merged
    if key in _APPENDED and isinstance(base, list) and isinstance(overlay, list):
        return base + [unwrap(item) for item in overlay if item not in base]
    return unwrap(overlay)


@dataclass(frozen=True)
class Manifest:
    """One Kubernetes object and where it was read from."""

    file: str
    index: int
    doc: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.doc.get("kind", ""))

    @property
    def name(self) -> str:
        return str((self.doc.get("metadata") or {}).get("name", ""))

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass
class RenderedTree:
    """A rendered output directory, loaded lazily."""

    root: Path
    profile: str | None = None
    _compose: dict[str, Any] | None = field(default=None, repr=False)
    _docs: dict[str, list[Any]] = field(default_factory=dict, repr=False)

    def exists(self, rel: str) -> bool:
        return (self.root / rel).exists()

    def docs(self, rel: str) -> list[Any]:
        """YAML documents of a file relative to the tree (cached); [] when the file is absent."""
        if rel not in self._docs:
            path = self.root / rel
            self._docs[rel] = load_yaml_docs(path) if path.is_file() else []
        return self._docs[rel]

    def files(self, pattern: str) -> list[str]:
        """Relative paths matching a glob under the tree, sorted."""
        return sorted(str(p.relative_to(self.root)) for p in self.root.glob(pattern) if p.is_file())

    def scoped(self, area: str, pattern: str, scope: str = "compose") -> list[str]:
        """Files of ``area`` (redis, postgres, traefik, ...) for one target: ``scope/area/`` or ``area/``."""
        return sorted({*self.files(f"{scope}/{area}/{pattern}"), *self.files(f"{area}/{pattern}")})

    def text(self, rel: str) -> str:
        return (self.root / rel).read_text(encoding="utf-8")

    # --- compose -------------------------------------------------------------------------------------

    @property
    def has_compose(self) -> bool:
        return self.exists(COMPOSE_BASE)

    @property
    def compose(self) -> dict[str, Any]:
        """The merged base + production compose model ({} when there is no compose output)."""
        if self._compose is None:
            base = (self.docs(COMPOSE_BASE) or [{}])[0]
            prod = (self.docs(COMPOSE_PROD) or [{}])[0]
            self._compose = merge_compose(unwrap(base), prod)
        return self._compose

    def services(self) -> dict[str, dict[str, Any]]:
        return dict(self.compose.get("services") or {})

    def compose_origin(self, *path: str) -> str:
        """Which compose file the merged value at ``path`` comes from (the overlay wins)."""
        prod: Any = (self.docs(COMPOSE_PROD) or [{}])[0]
        for part in path:
            if not isinstance(prod, dict) or part not in prod:
                return COMPOSE_BASE
            prod = prod[part]
        return COMPOSE_PROD

    # --- kubernetes ----------------------------------------------------------------------------------

    @property
    def has_kubernetes(self) -> bool:
        return (self.root / K8S_DIR).is_dir()

    def manifests(self) -> list[Manifest]:
        """Every Kubernetes object under kubernetes/ (the kustomization file itself excluded)."""
        out: list[Manifest] = []
        for rel in self.files(f"{K8S_DIR}/**/*.y*ml"):
            for index, doc in enumerate(self.docs(rel)):
                if isinstance(doc, dict) and doc.get("kind") and doc.get("kind") != "Kustomization":
                    if doc.get("kind") == "List":
                        out.extend(Manifest(rel, index, item) for item in doc.get("items") or [])
                    else:
                        out.append(Manifest(rel, index, doc))
        return out

    def kinds(self, *kinds: str) -> list[Manifest]:
        return [m for m in self.manifests() if m.kind in kinds]

    def kustomizations(self) -> list[tuple[str, dict[str, Any]]]:
        out = []
        for rel in self.files(f"{K8S_DIR}/**/kustomization.y*ml"):
            for doc in self.docs(rel):
                if isinstance(doc, dict):
                    out.append((rel, doc))
        return out

    def stamp(self) -> dict[str, Any]:
        """The render stamp (toolkit version, profile), when the renderer wrote one as JSON or YAML."""
        for rel in ("render.json",):
            if self.exists(rel):
                data = json.loads(self.text(rel))
                return data if isinstance(data, dict) else {}
        return {}
