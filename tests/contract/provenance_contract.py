"""Provenance on every provider: a deploy from each CI system's environment labels its
server group with the CI system, run URL, commit, ref and actor; find-image run anywhere
later reports them (`deployed`); a job run carries them too. The labels stay within what
every provider accepts, whatever the CI variables hold.

A provider's test class mixes in `ProvenanceContract` (the contract fixtures), and a
provider that runs jobs `JobProvenanceContract` with the hook `job_labels`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from ci_variables import EXPECTED, GITHUB, GITLAB, SYSTEMS
from helpers import Outcome, treadle

from treadle.ci import PROVENANCE_MAX, provenance_fields

PROVENANCE_LABELS = (
    "treadle.ci",
    "treadle.run-url",
    "treadle.commit",
    "treadle.ref",
    "treadle.actor",
)


class ProvenanceContract:
    def stage(self, connection_args: list[str], *args: str, **kw: Any) -> Outcome:
        return treadle(*args, *connection_args, **kw)

    def deploy_from(self, conn: list[str], region: str, image: str, env: dict[str, str]) -> Outcome:
        return self.stage(
            conn,
            "deploy",
            "--cluster",
            "web-prod",
            "--region",
            region,
            "--image",
            image,
            "--timeout",
            "60s",
            env=env,
        )

    @pytest.mark.parametrize("system", sorted(SYSTEMS))
    def test_find_image_reports_who_deployed_from_which_run(
        self, connection_args, provider, region, image, system: str
    ) -> None:
        deployed = self.deploy_from(connection_args, region, image, SYSTEMS[system])
        assert deployed.code == 0, deployed
        assert deployed.result is not None
        assert deployed.result["provenance"] == EXPECTED[system], "the result says who ran it"
        [group] = provider.server_groups(region)
        assert provenance_fields(group.labels) == EXPECTED[system]

        # Read later, from anywhere: no CI variables in this step.
        found = self.stage(
            connection_args, "find-image", "--cluster", "web-prod", "--region", region
        )
        assert found.code == 0, found
        assert found.result is not None
        assert found.result["deployed"] == EXPECTED[system]
        assert found.result["created_at"] == group.created_at, "when"
        assert "provenance" not in found.result, "no CI run read it"

    def test_provenance_labels_stay_within_what_the_provider_accepts(
        self, connection_args, provider, region, image
    ) -> None:
        hostile = {
            **GITLAB,
            "CI_COMMIT_REF_NAME": "feature/" + "x" * 5000,
            "GITLAB_USER_LOGIN": "eve\nmallory\x1b[31m",
            "CI_JOB_URL": "https://gitlab.example/" + "é" * 3000,
        }
        deployed = self.deploy_from(connection_args, region, image, hostile)
        assert deployed.code == 0, deployed
        [group] = provider.server_groups(region)
        labels = {k: v for k, v in group.labels.items() if k in PROVENANCE_LABELS}
        assert len(labels) == 5
        assert all(len(v) <= PROVENANCE_MAX and v.isprintable() for v in labels.values()), labels
        found = self.stage(
            connection_args, "find-image", "--cluster", "web-prod", "--region", region
        )
        assert found.result is not None
        assert found.result["deployed"]["actor"] == "eve^Jmallory^[[31m"
        assert found.result["deployed"]["ref"] == ("feature/" + "x" * 5000)[:PROVENANCE_MAX]

    def test_outside_ci_nothing_claims_a_run(self, connection_args, provider, region, image):
        deployed = self.deploy_from(connection_args, region, image, {})
        assert deployed.code == 0, deployed
        assert deployed.result is not None and "provenance" not in deployed.result
        [group] = provider.server_groups(region)
        assert not [k for k in group.labels if k in PROVENANCE_LABELS]
        found = self.stage(
            connection_args, "find-image", "--cluster", "web-prod", "--region", region
        )
        assert found.result is not None and "deployed" not in found.result


class JobProvenanceContract:
    """run-job's job carries the CI run's provenance as labels, like a server group."""

    def job_labels(self, provider: Any, job_id: str) -> Mapping[str, str]:
        """The labels of the job's (only) run, while it runs."""
        raise NotImplementedError

    def test_a_job_is_labelled_with_the_runs_provenance(
        self, connection_args, provider, job_id
    ) -> None:
        # Left running (--no-wait), so that its labels can be read; the job_id fixture
        # removes it afterwards.
        outcome = self.stage(  # type: ignore[attr-defined]
            connection_args,
            "run-job",
            "--job-id",
            job_id,
            *self.job_args(job_id, seconds=30),  # type: ignore[attr-defined]
            "--no-wait",
            env=GITHUB,
        )
        assert outcome.code == 0, outcome
        assert outcome.result is not None
        assert outcome.result["provenance"] == EXPECTED["github"]
        assert provenance_fields(self.job_labels(provider, job_id)) == EXPECTED["github"]
