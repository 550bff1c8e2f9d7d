"""A spec file (`--spec`): a JSON or YAML object whose strings may hold placeholders, or
one service of a Compose file (`--service`, read by treadle.providers.engine.compose)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from treadle.context import Context, load_document
from treadle.errors import InputError
from treadle.limits import check_plain


def load_spec(
    path: str | None,
    context: Context,
    service: str | None = None,
    warn: Callable[[str], None] | None = None,
) -> dict[str, Any] | None:
    if not path:
        if service:
            raise InputError("--service names a service of a Compose file: give the file (--spec)")
        return None
    spec = load_document(path, "spec file")
    if not isinstance(spec, dict):
        raise InputError(
            f"spec file {path}: expected an object at the top, found {type(spec).__name__}"
        )
    check_plain(spec, f"spec file {path}")
    if service or "services" in spec:
        from treadle.providers.engine import compose

        if not compose.is_compose(spec):
            raise InputError(f"--service {service}: spec file {path} is not a Compose file")
        spec = compose.load_service(spec, path, service, warn=warn)
    rendered: dict[str, Any] = context.render(spec, f"spec file {path}")
    return rendered


def sized(spec: dict[str, Any] | None, instances: int | None) -> int | None:
    """--instances, else a Compose service's `deploy.replicas`; not both."""
    deploy = (spec or {}).get("deploy")
    replicas = deploy.get("replicas") if isinstance(deploy, dict) else None
    if replicas is None:
        return instances
    if instances is not None:
        raise InputError("spec: deploy.replicas next to --instances: give the size in one place")
    if isinstance(replicas, bool) or not str(replicas).isdigit():
        raise InputError(f"spec: deploy.replicas must be a whole number, not {replicas!r}")
    return int(replicas)
