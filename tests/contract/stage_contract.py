"""The stages, run through the CLI as a CI step runs them, results chained through
`--context` and `{{ }}` as a pipeline chains them."""

from __future__ import annotations

import json
import time
from pathlib import Path

from helpers import Outcome, treadle

from treadle.providers.base import DECREMENT_CHOSEN, Provider


class StageContract:
    def stage(self, connection_args: list[str], *args: str, **kw: object) -> Outcome:
        return treadle(*args, *connection_args, **kw)  # type: ignore[arg-type]

    def groups(self, provider: Provider, region: str) -> dict[str, tuple[bool, int]]:
        """name -> (enabled, instances), as the provider sees the cluster now."""
        return {g.name: (g.enabled, g.instances) for g in provider.server_groups(region)}

    def deploy(self, conn, region, image, *extra: str) -> Outcome:
        outcome = self.stage(
            conn,
            "deploy",
            "--app",
            "web",
            "--stack",
            "prod",
            "--region",
            region,
            "--image",
            image,
            "--timeout",
            "60s",
            *extra,
        )
        return outcome

    def test_deploy_red_black_find_resize_destroy_chain(
        self, connection_args, provider, region, image, image_v2, tmp_path: Path
    ) -> None:
        conn = connection_args
        first = self.deploy(conn, region, image, "--instances", "2")
        assert first.code == 0, first
        assert first.result is not None
        assert first.result["server_group"] == "web-prod-v000"
        assert first.result["status"] == "succeeded"
        assert self.groups(provider, region) == {"web-prod-v000": (True, 2)}

        second_file = tmp_path / "deploy.json"
        second = self.deploy(
            conn, region, image_v2, "--strategy", "red-black", "--output", str(second_file)
        )
        assert second.code == 0, second
        result = json.loads(second_file.read_text())
        assert result["server_group"] == "web-prod-v001"
        assert result["previous_server_group"] == "web-prod-v000"
        assert result["disabled_server_groups"] == ["web-prod-v000"]
        assert result["instances"] == 2, "the size defaults to the newest enabled group's"
        assert self.groups(provider, region) == {
            "web-prod-v000": (False, 0),
            "web-prod-v001": (True, 2),
        }

        found = self.stage(
            conn,
            "find-image",
            "--cluster",
            "web-prod",
            "--region",
            region,
            "--output",
            str(tmp_path / "image.json"),
            output=tmp_path / "image.json",
        )
        assert found.code == 0, found
        assert found.result is not None
        assert (found.result["image"], found.result["server_group"]) == (image_v2, "web-prod-v001")

        # Chain: resize the server group the deploy made, named through the context.
        ctx = [
            "--context",
            f"deploy={second_file}",
            "--region",
            region,
            "--server-group",
            "{{ deploy.server_group }}",
        ]
        for mode, expected in (
            (["--instances", "3"], 3),
            (["--scale-up", "2"], 5),
            (["--scale-down", "1"], 4),
            (["--scale-pct", "-50"], 2),
        ):
            resized = self.stage(conn, "resize", *ctx, *mode)
            assert resized.code == 0, resized
            assert resized.result is not None and resized.result["instances"] == expected
            assert self.groups(provider, region)["web-prod-v001"] == (True, expected)

        # Rollback by hand: enable the previous one, disable the new one.
        enabled = self.stage(
            conn, "enable", "--region", region, "--cluster", "web-prod", "--target", "previous"
        )
        assert enabled.code == 0, enabled
        assert self.groups(provider, region)["web-prod-v000"] == (True, 2)
        disabled = self.stage(
            conn, "disable", "--region", region, "--server-group", "web-prod-v001"
        )
        assert disabled.code == 0, disabled
        assert self.groups(provider, region)["web-prod-v001"] == (False, 0)

        gone = self.stage(conn, "destroy", "--region", region, "--server-group", "web-prod-v001")
        assert gone.code == 0, gone
        assert gone.result is not None and gone.result["destroyed"] is True
        assert self.groups(provider, region) == {"web-prod-v000": (True, 2)}
        again = self.stage(conn, "destroy", "--region", region, "--server-group", "web-prod-v001")
        assert again.code == 0 and again.result is not None and again.result["destroyed"] is False

    def test_traffic_guard_refuses_to_remove_the_last_enabled_group(
        self, connection_args, provider, region, image
    ) -> None:
        conn = connection_args
        assert self.deploy(conn, region, image).code == 0
        for stage in ("destroy", "disable"):
            refused = self.stage(conn, stage, "--region", region, "--server-group", "web-prod-v000")
            assert refused.code == 3, refused
            assert refused.result is not None and refused.result["status"] == "refused"
            assert "last enabled server group" in refused.result["error"]["message"]
        to_zero = self.stage(
            conn,
            "resize",
            "--region",
            region,
            "--server-group",
            "web-prod-v000",
            "--instances",
            "0",
        )
        assert to_zero.code == 3, to_zero
        assert self.groups(provider, region) == {"web-prod-v000": (True, 1)}
        forced = self.stage(
            conn, "destroy", "--region", region, "--server-group", "web-prod-v000", "--force"
        )
        assert forced.code == 0, forced

    def test_highlander_leaves_only_the_new_group(
        self, connection_args, provider, region, image, image_v2
    ) -> None:
        conn = connection_args
        assert self.deploy(conn, region, image).code == 0
        assert self.deploy(conn, region, image, "--strategy", "red-black").code == 0
        third = self.deploy(conn, region, image_v2, "--strategy", "highlander")
        assert third.code == 0, third
        assert third.result is not None
        assert sorted(third.result["destroyed_server_groups"]) == ["web-prod-v000", "web-prod-v001"]
        assert self.groups(provider, region) == {"web-prod-v002": (True, 1)}

    def test_red_black_max_remaining_destroys_the_oldest(
        self, connection_args, provider, region, image
    ) -> None:
        conn = connection_args
        for _ in range(3):
            assert self.deploy(conn, region, image, "--strategy", "red-black").code == 0
        last = self.deploy(conn, region, image, "--strategy", "red-black", "--max-remaining", "1")
        assert last.code == 0, last
        assert last.result is not None
        assert last.result["destroyed_server_groups"] == ["web-prod-v000", "web-prod-v001"]
        assert self.groups(provider, region) == {
            "web-prod-v002": (False, 0),
            "web-prod-v003": (True, 1),
        }

    def test_rolling_red_black_moves_capacity_in_steps(
        self, connection_args, provider, region, image, image_v2
    ) -> None:
        conn = connection_args
        assert self.deploy(conn, region, image, "--instances", "4").code == 0
        rolled = self.deploy(
            conn, region, image_v2, "--strategy", "rolling-red-black", "--steps", "50,100"
        )
        assert rolled.code == 0, rolled
        assert "web-prod-v001: 2/2 healthy" in rolled.stderr
        assert self.groups(provider, region) == {
            "web-prod-v000": (False, 0),
            "web-prod-v001": (True, 4),
        }
        back = self.stage(conn, "enable", "--region", region, "--server-group", "web-prod-v000")
        assert back.code == 0 and self.groups(provider, region)["web-prod-v000"] == (True, 4)

    def test_unhealthy_deploy_fails_in_time_and_rolls_back(
        self, connection_args, provider, region, image, unhealthy_image
    ) -> None:
        conn = connection_args
        assert self.deploy(conn, region, image, "--instances", "2").code == 0
        before = self.groups(provider, region)
        started = time.monotonic()
        failed = self.deploy(
            conn,
            region,
            unhealthy_image,
            "--strategy",
            "red-black",
            "--timeout",
            "3s",
            "--rollback-on-failure",
        )
        took = time.monotonic() - started
        assert failed.code == 1, failed
        assert took < 3 + 10, f"took {took:.1f}s for a 3s timeout"
        assert failed.result is not None and failed.result["rolled_back"] is True
        assert failed.result["server_group"] == "web-prod-v001"
        after = self.groups(provider, region)
        assert after["web-prod-v000"] == before["web-prod-v000"]
        assert after["web-prod-v001"][0] is False, "the failed group is taken out of service"

    def test_unhealthy_deploy_without_rollback_names_what_it_left(
        self, connection_args, provider, region, unhealthy_image
    ) -> None:
        failed = self.deploy(connection_args, region, unhealthy_image, "--timeout", "2s")
        assert failed.code == 1, failed
        assert failed.result is not None
        assert failed.result["status"] == "failed"
        assert failed.result["server_group"] == "web-prod-v000"
        assert "web-prod-v000" in self.groups(provider, region)

    def test_dry_run_changes_nothing(self, connection_args, provider, region, image) -> None:
        dry = self.deploy(connection_args, region, image, "--dry-run")
        assert dry.code == 0, dry
        assert dry.result is not None and dry.result["dry_run"] is True
        assert dry.result["planned"] == [f"create web-prod-v000 in {region} with 1 instances"]
        assert self.groups(provider, region) == {}

    def test_a_rerun_with_the_same_run_key_carries_on_instead_of_duplicating(
        self, connection_args, provider, region, image, image_v2
    ) -> None:
        conn = connection_args
        assert self.deploy(conn, region, image).code == 0
        # The first attempt dies after creating its server group (here: does not wait).
        first = self.deploy(conn, region, image_v2, "--run-key", "pipeline-7-deploy", "--no-wait")
        assert first.code == 0, first
        rerun = self.deploy(
            conn, region, image_v2, "--run-key", "pipeline-7-deploy", "--strategy", "red-black"
        )
        assert rerun.code == 0, rerun
        assert rerun.result is not None and rerun.result["server_group"] == "web-prod-v001"
        assert "earlier attempt" in rerun.stderr
        assert self.groups(provider, region) == {
            "web-prod-v000": (False, 0),
            "web-prod-v001": (True, 1),
        }
        other = self.deploy(conn, region, image_v2, "--run-key", "pipeline-8-deploy")
        assert other.code == 0 and other.result is not None
        assert other.result["server_group"] == "web-prod-v002"

    def test_a_strategy_never_replaces_serving_groups_with_an_empty_one(
        self, connection_args, provider, region, image, image_v2
    ) -> None:
        conn = connection_args
        assert self.deploy(conn, region, image).code == 0
        for strategy in ("highlander", "red-black", "rolling-red-black"):
            refused = self.deploy(
                conn, region, image_v2, "--instances", "0", "--strategy", strategy
            )
            assert refused.code == 3, refused
            assert "leave nothing serving" in refused.stderr
        assert self.groups(provider, region) == {"web-prod-v000": (True, 1)}

    # --- the rest of Spinnaker's pipeline -------------------------------------------------

    def cluster_stage(self, conn, region, stage: str, *extra: str) -> Outcome:
        return self.stage(conn, stage, "--cluster", "web-prod", "--region", region, *extra)

    def test_rollback_brings_the_previous_back_then_takes_the_current_out(
        self, connection_args, provider, region, image, image_v2
    ) -> None:
        conn = connection_args
        assert self.deploy(conn, region, image, "--instances", "2").code == 0
        assert self.deploy(conn, region, image_v2, "--strategy", "red-black").code == 0
        rolled = self.cluster_stage(conn, region, "rollback")
        assert rolled.code == 0, rolled
        assert rolled.result is not None
        assert (rolled.result["server_group"], rolled.result["previous_server_group"]) == (
            "web-prod-v000",
            "web-prod-v001",
        )
        assert self.groups(provider, region) == {
            "web-prod-v000": (True, 2),
            "web-prod-v001": (False, 0),
        }
        # Nothing older than web-prod-v000 to go back to: refused, nothing changed.
        again = self.cluster_stage(conn, region, "rollback")
        assert again.code == 3, again
        assert "nothing to roll back to" in again.stderr
        assert self.groups(provider, region)["web-prod-v000"] == (True, 2)
        # --to names the group to bring back, newer or older.
        forward = self.cluster_stage(conn, region, "rollback", "--to", "web-prod-v001")
        assert forward.code == 0, forward
        assert self.groups(provider, region) == {
            "web-prod-v000": (False, 0),
            "web-prod-v001": (True, 2),
        }

    def test_cluster_stages_keep_the_newest_and_act_on_the_rest(
        self, connection_args, provider, region, image, tmp_path: Path
    ) -> None:
        conn = connection_args
        for _ in range(4):
            assert self.deploy(conn, region, image).code == 0
        disabled = self.cluster_stage(conn, region, "disable-cluster", "--remaining-enabled", "2")
        assert disabled.code == 0, disabled
        assert disabled.result is not None
        assert disabled.result["kept"] == ["web-prod-v003", "web-prod-v002"]
        assert sorted(disabled.result["changed_server_groups"]) == [
            "web-prod-v000",
            "web-prod-v001",
        ]
        assert self.groups(provider, region) == {
            "web-prod-v000": (False, 0),
            "web-prod-v001": (False, 0),
            "web-prod-v002": (True, 1),
            "web-prod-v003": (True, 1),
        }
        # Enabled ones are only scaled down when allowed.
        scaled = self.cluster_stage(conn, region, "scale-down-cluster")
        assert scaled.code == 0, scaled
        assert scaled.result is not None and scaled.result["skipped"] == ["web-prod-v002"]
        allowed = self.cluster_stage(
            conn, region, "scale-down-cluster", "--allow-scale-down-active"
        )
        assert allowed.code == 0, allowed
        assert self.groups(provider, region)["web-prod-v002"] == (False, 0)
        # A deploy's result in the context: its server group is never touched.
        deploy_file = tmp_path / "deploy.json"
        assert self.deploy(conn, region, image, "--output", str(deploy_file)).code == 0
        shrunk = self.cluster_stage(
            conn, region, "shrink-cluster", "--shrink-to", "1", "--context", f"deploy={deploy_file}"
        )
        assert shrunk.code == 0, shrunk
        assert self.groups(provider, region) == {
            "web-prod-v003": (True, 1),
            "web-prod-v004": (True, 1),
        }
        # Destroying the enabled rest takes --allow-delete-active; the traffic guard keeps
        # the cluster serving.
        assert self.cluster_stage(conn, region, "shrink-cluster").code == 0
        assert set(self.groups(provider, region)) == {"web-prod-v003", "web-prod-v004"}
        deleted = self.cluster_stage(conn, region, "shrink-cluster", "--allow-delete-active")
        assert deleted.code == 0, deleted
        assert self.groups(provider, region) == {"web-prod-v004": (True, 1)}
        none_left = self.cluster_stage(
            conn, region, "shrink-cluster", "--shrink-to", "0", "--allow-delete-active"
        )
        assert none_left.code == 3, none_left
        gone = self.stage(
            conn,
            "shrink-cluster",
            "--cluster",
            "nothing-here",
            "--region",
            region,
            "--shrink-to",
            "0",
        )
        assert gone.code == 0, gone

    def test_clone_copies_the_definition_with_overrides(
        self, connection_args, provider, region, image, image_v2
    ) -> None:
        conn = connection_args
        assert self.deploy(conn, region, image, "--instances", "2").code == 0
        cloned = self.stage(
            conn,
            "clone",
            "--source",
            "web-prod-v000",
            "--region",
            region,
            "--image",
            image_v2,
            "--strategy",
            "red-black",
        )
        assert cloned.code == 0, cloned
        assert cloned.result is not None
        assert (cloned.result["server_group"], cloned.result["source"]) == (
            "web-prod-v001",
            "web-prod-v000",
        )
        assert cloned.result["instances"] == 2 and cloned.result["image"] == image_v2
        assert self.groups(provider, region) == {
            "web-prod-v000": (False, 0),
            "web-prod-v001": (True, 2),
        }
        # Into another cluster, from the newest of this one.
        other = self.stage(
            conn,
            "clone",
            "--cluster",
            "web-prod",
            "--target",
            "newest",
            "--region",
            region,
            "--app",
            "web",
            "--stack",
            "canary",
            "--instances",
            "1",
        )
        assert other.code == 0, other
        assert other.result is not None and other.result["server_group"] == "web-canary-v000"
        found = provider.server_group(region, "web-canary-v000")
        assert found is not None and found.image == image_v2
        missing = self.stage(conn, "clone", "--source", "web-prod-v042", "--region", region)
        assert missing.code == 2, missing

    def test_terminate_instances_replaces_them_or_shrinks(
        self, connection_args, provider, region, image
    ) -> None:
        conn = connection_args
        assert self.deploy(conn, region, image, "--instances", "2").code == 0
        group = provider.server_group(region, "web-prod-v000")
        assert group is not None
        before = [i.id for i in provider.instances(group)]
        killed = self.stage(
            conn,
            "terminate-instances",
            "--server-group",
            "web-prod-v000",
            "--region",
            region,
            "--count",
            "1",
        )
        assert killed.code == 0, killed
        assert killed.result is not None and killed.result["terminated"] == before[:1]
        after = [i.id for i in provider.instances(group)]
        assert len(after) == 2 and before[0] not in after
        # A provider that chooses which instances go when a group shrinks takes a count.
        chosen = DECREMENT_CHOSEN in provider.capabilities
        which = ["--instance", after[0]] if chosen else ["--count", "1"]
        shrunk = self.stage(
            conn,
            "terminate-instances",
            "--server-group",
            "web-prod-v000",
            "--region",
            region,
            *which,
            "--decrement",
        )
        assert shrunk.code == 0, shrunk
        assert self.groups(provider, region)["web-prod-v000"] == (True, 1)
        if chosen:
            assert [i.id for i in provider.instances(group)] == after[1:]
        last = self.stage(
            conn,
            "terminate-instances",
            "--server-group",
            "web-prod-v000",
            "--region",
            region,
            "--count",
            "1",
            "--decrement",
        )
        assert last.code == 3, last
        unknown = self.stage(
            conn,
            "terminate-instances",
            "--server-group",
            "web-prod-v000",
            "--region",
            region,
            "--instance",
            "no-such-instance",
        )
        assert unknown.code == 2, unknown

    def test_check_preconditions_hold_or_refuse(
        self, connection_args, provider, region, image, tmp_path: Path
    ) -> None:
        conn = connection_args
        assert self.deploy(conn, region, image).code == 0
        context = tmp_path / "build.json"
        context.write_text(json.dumps({"status": "green", "tests": 12}))
        held = self.stage(
            conn,
            "check-preconditions",
            "--context",
            f"build={context}",
            "--expression",
            "{{ build.status == 'green' }}",
            "--cluster-size",
            "web-prod",
            "--comparison",
            ">=",
            "--expected",
            "1",
            "--region",
            region,
        )
        assert held.code == 0, held
        assert held.result is not None and held.result["passed"] is True
        failed = self.stage(
            conn,
            "check-preconditions",
            "--context",
            f"build={context}",
            "--expression",
            "{{ build.tests > `100` }}",
            "--cluster-size",
            "web-prod",
            "--comparison",
            "==",
            "--expected",
            "2",
            "--region",
            region,
        )
        assert failed.code == 3, failed
        assert failed.result is not None
        assert [c["passed"] for c in failed.result["checks"]] == [False, False]
        assert failed.result["checks"][1]["actual"] == 1

    def test_outside_every_execution_window_nothing_changes(
        self, connection_args, provider, region, image
    ) -> None:
        from datetime import UTC, datetime, timedelta

        now = datetime.now(UTC)
        closed = now + timedelta(hours=2)
        window = f"{closed:%H}:00-{(closed + timedelta(hours=1)):%H}:00"
        refused = self.deploy(connection_args, region, image, "--window", window)
        assert refused.code == 3, refused
        assert refused.result is not None and "next_window" in refused.result
        assert self.groups(provider, region) == {}
        opened = f"{now - timedelta(hours=1):%H}:00-{now + timedelta(hours=2):%H}:00"
        allowed = self.deploy(connection_args, region, image, "--window", opened)
        assert allowed.code == 0, allowed

    def test_resize_to_the_size_of_the_largest_in_the_cluster(
        self, connection_args, provider, region, image
    ) -> None:
        conn = connection_args
        assert self.deploy(conn, region, image, "--instances", "3").code == 0
        assert self.deploy(conn, region, image, "--instances", "1").code == 0
        resized = self.stage(
            conn,
            "resize",
            "--server-group",
            "web-prod-v001",
            "--region",
            region,
            "--scale-to-cluster",
        )
        assert resized.code == 0, resized
        assert self.groups(provider, region)["web-prod-v001"] == (True, 3)

    def test_a_retried_relative_resize_and_destroy_act_once(
        self, connection_args, provider, region, image
    ) -> None:
        """The decision is kept on the cluster (beside its lease, never a server group):
        the same job retried grows the group once and destroys one group, not two."""
        conn = connection_args
        for _ in range(3):
            assert self.deploy(conn, region, image, "--instances", "1").code == 0
        resize = ("resize", "--server-group", "web-prod-v002", "--region", region)
        destroy = ("destroy", "--cluster", "web-prod", "--target", "oldest", "--region", region)
        for _ in range(2):
            grown = self.stage(conn, *resize, "--scale-up", "1", "--run-key", "job-1")
            assert grown.code == 0, grown
            gone = self.stage(conn, *destroy, "--force", "--run-key", "job-1")
            assert gone.code == 0 and gone.result is not None, gone
            assert gone.result["server_group"] == "web-prod-v000"
        assert self.groups(provider, region) == {
            "web-prod-v001": (True, 1),
            "web-prod-v002": (True, 2),
        }

    def test_canary_then_promote_from_another_job(
        self, connection_args, provider, region, image, image_v2
    ) -> None:
        conn = connection_args
        assert self.deploy(conn, region, image, "--instances", "2").code == 0
        canary = self.deploy(
            conn, region, image_v2, "--strategy", "canary", "--canary-instances", "1"
        )
        assert canary.code == 0, canary
        assert canary.result is not None and canary.result["canary_instances"] == 1
        assert self.groups(provider, region) == {
            "web-prod-v000": (True, 2),
            "web-prod-v001": (True, 1),
        }
        promoted = self.cluster_stage(conn, region, "promote")
        assert promoted.code == 0, promoted
        assert promoted.result is not None
        assert promoted.result["disabled_server_groups"] == ["web-prod-v000"]
        assert self.groups(provider, region) == {
            "web-prod-v000": (False, 0),
            "web-prod-v001": (True, 2),
        }
        again = self.cluster_stage(conn, region, "promote")
        assert again.code == 3, again
        assert "no canary" in again.stderr

    def test_canary_then_abort_restores_what_served(
        self, connection_args, provider, region, image, image_v2
    ) -> None:
        conn = connection_args
        assert self.deploy(conn, region, image, "--instances", "2").code == 0
        canary = self.deploy(
            conn, region, image_v2, "--strategy", "canary", "--canary-percent", "50"
        )
        assert canary.code == 0, canary
        aborted = self.cluster_stage(conn, region, "abort")
        assert aborted.code == 0, aborted
        assert self.groups(provider, region) == {
            "web-prod-v000": (True, 2),
            "web-prod-v001": (False, 0),
        }
        assert self.cluster_stage(conn, region, "abort").code == 3
        assert self.cluster_stage(conn, region, "promote").code == 3
