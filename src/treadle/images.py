"""Docker image references: `[registry/]repository[:tag][@digest]`."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_REGISTRY = "docker.io"


@dataclass(frozen=True)
class ImageRef:
    registry: str
    repository: str
    tag: str | None
    digest: str | None

    @classmethod
    def parse(cls, reference: str) -> ImageRef:
        name, _, digest = reference.partition("@")
        registry, slash, rest = name.partition("/")
        # The first part is a registry only when it looks like a host (Docker's own rule).
        if not slash or not ("." in registry or ":" in registry or registry == "localhost"):
            registry, rest = DEFAULT_REGISTRY, name
        repository, colon, tag = rest.rpartition(":")
        if not colon or "/" in tag:
            repository, tag = rest, ""
        return cls(registry, repository, tag or (None if digest else "latest"), digest or None)
