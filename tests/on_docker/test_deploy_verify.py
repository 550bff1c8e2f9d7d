"""deploy --verify on a real engine: the new server group is checked once healthy and
before the strategy takes the old ones out; a failed check rolls back when asked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from dockerish import SERVED, deploy_on

pytestmark = pytest.mark.docker


def verify_file(tmp_path: Path, **keys: Any) -> str:
    path = tmp_path / "verify.yaml"
    path.write_text(yaml.safe_dump(keys))
    return str(path)


def serving(engine: Any, region: str) -> set[str]:
    listed = engine.containers(filters={"label": [f"treadle.region={region}"]})
    return {
        c["Labels"]["treadle.server-group"]
        for c in listed
        if "treadle.instance" in c["Labels"] and c["State"] == "running"
    }


def test_a_passing_check_lets_red_black_finish(engine: Any, region: str, tmp_path: Path) -> None:
    assert deploy_on("docker", region, tmp_path, SERVED).code == 0
    check = verify_file(tmp_path, path="/", requests=20, concurrency=4)
    second = deploy_on(
        "docker", region, tmp_path, SERVED, "--strategy", "red-black", "--verify", check
    )
    assert second.code == 0, second
    assert second.result is not None
    report = second.result["verify"]
    assert (report["requests"], report["succeeded"], report["passed"]) == (20, 20, True)
    assert report["urls"] == [f"http://{e}/" for e in second.result["endpoints"]]
    assert serving(engine, region) == {"web-prod-v001"}


def test_a_failing_check_rolls_back_before_the_old_group_is_touched(
    engine: Any, region: str, tmp_path: Path
) -> None:
    assert deploy_on("docker", region, tmp_path, SERVED).code == 0
    check = verify_file(tmp_path, requests=5, **{"body-contains": "text no page has"})
    second = deploy_on(
        "docker",
        region,
        tmp_path,
        SERVED,
        "--strategy",
        "red-black",
        "--verify",
        check,
        "--rollback-on-failure",
    )
    assert second.code == 1, second
    assert second.result is not None
    assert second.result["rolled_back"] is True
    assert second.result["verify"]["failed"] == 5
    assert "verify failed" in second.stderr
    # The old group never stopped serving; the new one is out.
    assert serving(engine, region) == {"web-prod-v000"}


@pytest.mark.parametrize(
    ("keys", "says"),
    [
        ({"requests": 3, "retries": 2}, "unknown key 'retries'"),
        ({"url": "ftp://example.com/"}, "ftp://example.com/"),
        ({"min-success-ratio": 1.5}, "min-success-ratio"),
    ],
)
def test_a_bad_verify_file_changes_nothing(
    engine: Any, region: str, tmp_path: Path, keys: dict[str, Any], says: str
) -> None:
    check = verify_file(tmp_path, **keys)
    outcome = deploy_on("docker", region, tmp_path, SERVED, "--verify", check)
    assert outcome.code == 2, outcome
    assert says in outcome.stderr and len(outcome.error_lines) == 1, outcome
    assert serving(engine, region) == set()
