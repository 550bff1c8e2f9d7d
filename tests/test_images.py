import pytest

from treadle.images import ImageRef


@pytest.mark.parametrize(
    ("ref", "registry", "repository", "tag", "digest"),
    [
        ("nginx", "docker.io", "nginx", "latest", None),
        ("nginx:1.25", "docker.io", "nginx", "1.25", None),
        ("library/nginx:1.25", "docker.io", "library/nginx", "1.25", None),
        ("registry.example:5000/team/web:2.0", "registry.example:5000", "team/web", "2.0", None),
        ("localhost/web", "localhost", "web", "latest", None),
        ("ghcr.io/o/web@sha256:abc", "ghcr.io", "o/web", None, "sha256:abc"),
        ("ghcr.io/o/web:1@sha256:abc", "ghcr.io", "o/web", "1", "sha256:abc"),
        ("registry.example:5000/web", "registry.example:5000", "web", "latest", None),
    ],
)
def test_image_references_split_like_docker(ref, registry, repository, tag, digest):
    assert ImageRef.parse(ref) == ImageRef(registry, repository, tag, digest)
