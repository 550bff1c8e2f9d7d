"""The seam, called directly: what every provider must do for the stages to work."""

from __future__ import annotations

import time

import pytest

from treadle import __version__
from treadle.errors import AlreadyExists, InputError
from treadle.naming import Cluster, ServerGroupName
from treadle.providers.base import (
    LeaseKey,
    NewServerGroup,
    Provider,
    ServerGroup,
    server_group_labels,
)
from treadle.stages.records import capacity, disabling, enabling
from treadle.stages.waits import hopeless

CLUSTER = Cluster("contract", "test")


def new_group(region: str, image: str, sequence: int = 0, instances: int = 1) -> NewServerGroup:
    name = ServerGroupName(CLUSTER, sequence)
    return NewServerGroup(
        name=name,
        region=region,
        image=image,
        instances=instances,
        spec=None,
        labels=server_group_labels(name, __version__, f"2026-01-01T00:00:0{sequence}.000Z"),
    )


def settle(provider: Provider, group: ServerGroup, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        health = provider.health(group)
        assert hopeless(health) is None, hopeless(health)
        if health.ok:
            return
        time.sleep(0.1)
    raise AssertionError(f"{group.name} did not settle: {provider.health(group).describe()}")


class ProviderContract:
    def create(self, provider: Provider, region: str, image: str, **kw: int) -> ServerGroup:
        created = provider.create(region, provider.definition(new_group(region, image, **kw)))
        settle(provider, created)
        return created

    def test_region_is_checked_and_canonical(self, provider: Provider, region: str) -> None:
        assert provider.check_region(region) == region
        assert provider.check_region(provider.default_region) == provider.default_region
        with pytest.raises(InputError):
            provider.check_region("Not A Region!")

    def test_created_group_is_listed_with_its_labels(self, provider, region, image) -> None:
        created = self.create(provider, region, image, instances=2)
        listed = {g.name: g for g in provider.server_groups(region)}
        group = listed["contract-test-v000"]
        assert (group.image, group.instances, group.enabled, group.region) == (
            image,
            2,
            True,
            region,
        )
        assert group.cluster == CLUSTER and group.sequence == 0
        assert group.labels["treadle.cluster"] == "contract-test"
        assert group.labels["treadle.version"] == __version__
        assert group.created_at == "2026-01-01T00:00:00.000Z"
        assert provider.server_group(region, created.name) == group
        assert provider.server_group(region, "contract-test-v999") is None

    def test_resize_reaches_the_new_size(self, provider, region, image) -> None:
        group = self.create(provider, region, image, instances=1)
        provider.resize(group, 3)
        settle(provider, group)
        assert provider.health(group).healthy == 3
        provider.resize(group, 1)
        settle(provider, group)
        assert provider.server_group(region, group.name).instances == 1  # type: ignore[union-attr]

    def test_disable_keeps_the_definition_and_enable_restores_the_size(
        self, provider, region, image
    ) -> None:
        group = self.create(provider, region, image, instances=2)
        provider.disable(group, disabling(group, 2))
        settle(provider, group)
        disabled = provider.server_group(region, group.name)
        assert disabled is not None
        assert (disabled.enabled, disabled.instances, capacity(disabled)) == (False, 0, 2)
        assert disabled.image == image
        provider.enable(disabled, 2, enabling(2))
        settle(provider, disabled)
        enabled = provider.server_group(region, group.name)
        assert enabled is not None and (enabled.enabled, enabled.instances) == (True, 2)
        assert provider.health(enabled).healthy == 2

    def test_destroy_removes_it(self, provider, region, image) -> None:
        group = self.create(provider, region, image)
        provider.destroy(group)
        end = time.monotonic() + 30
        while provider.server_group(region, group.name) is not None:
            assert time.monotonic() < end, "still there after destroy"
            time.sleep(0.1)
        assert group.name not in {g.name for g in provider.server_groups(region)}

    def test_unhealthy_image_never_reports_ok(self, provider, region, unhealthy_image) -> None:
        created = provider.create(
            region, provider.definition(new_group(region, unhealthy_image, instances=1))
        )
        end = time.monotonic() + 2.0
        while time.monotonic() < end:
            health = provider.health(created)
            if hopeless(health):
                return
            assert not health.ok, health
            time.sleep(0.1)

    def test_definition_makes_no_call_and_refuses_a_bad_spec(self, provider, region, image) -> None:
        bad = NewServerGroup(
            name=ServerGroupName(CLUSTER, 1),
            region=region,
            image=image,
            instances=1,
            spec={"no such field": True},
            labels={},
        )
        with pytest.raises(InputError):
            provider.definition(bad)
        assert provider.server_groups(region) == []

    def test_a_taken_name_is_refused_never_adopted(self, provider, region, image) -> None:
        self.create(provider, region, image)
        again = provider.definition(new_group(region, image, instances=3))
        with pytest.raises(AlreadyExists):
            provider.create(region, again)
        listed = provider.server_group(region, "contract-test-v000")
        assert listed is not None and listed.instances == 1

    def test_a_resize_changes_the_size_and_nothing_else(self, provider, region, image) -> None:
        group = self.create(provider, region, image, instances=2)
        provider.resize(group, 1)
        settle(provider, group)
        resized = provider.server_group(region, group.name)
        assert resized is not None and resized.instances == 1
        assert resized.labels == group.labels

    def test_a_lease_record_is_made_once_renewed_and_deleted(self, provider, region) -> None:
        key = LeaseKey(region, "contract-test")
        assert provider.lease(key) is None
        held = provider.create_lease(key, {"treadle.lease.holder": "a"}, "2030-01-01T00:00:00.000Z")
        assert held is not None
        assert (
            provider.create_lease(key, {"treadle.lease.holder": "b"}, "2030-01-01T00:00:00Z")
            is None
        )
        read = provider.lease(key)
        assert read is not None and read.id == held.id
        assert read.labels["treadle.lease.holder"] == "a"
        assert provider.renew_lease(held, "2031-01-01T00:00:00.000Z")
        renewed = provider.lease(key)
        assert renewed is not None and renewed.expires == "2031-01-01T00:00:00.000Z"
        # A claim on the record is a record of its own; the cluster's groups never show them.
        claim = LeaseKey(region, "contract-test", claim=held.id[:12])
        assert provider.create_lease(claim, {}, "2030-01-01T00:00:00.000Z") is not None
        assert provider.server_groups(region) == []
        provider.delete_lease(held)
        assert provider.lease(key) is None
        assert not provider.renew_lease(held, "2032-01-01T00:00:00.000Z")
        provider.delete_lease(held)  # gone already: no error
        again = provider.create_lease(
            key, {"treadle.lease.holder": "c"}, "2030-01-01T00:00:00.000Z"
        )
        assert again is not None and again.id != held.id
