"""Exit codes that keep their promise: 2, 3 and 4 only when nothing was changed. Once a
stage has changed anything, whatever ends it is exit 1 and the rollback runs."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from emulator import MarathonEmulator, Request, Response
from emulator.messages import html_page
from faults import first
from helpers import treadle


def seeded(marathon: MarathonEmulator, instances: int = 2) -> None:
    deployed = treadle(
        "deploy",
        "--app",
        "web",
        "--image",
        "web:1",
        "--instances",
        str(instances),
        "--marathon-url",
        marathon.url,
    )
    assert deployed.code == 0, deployed


def disabling_web_v000(request: Request) -> bool:
    return request.method == "PUT" and request.path == "/v2/apps/web-v000"


def answer_when(when, answer):  # type: ignore[no-untyped-def]
    def fault(request: Request) -> Response | None:
        return answer(request) if when(request) else None

    return fault


def red_black(marathon: MarathonEmulator, *extra: str):  # type: ignore[no-untyped-def]
    return treadle(
        "deploy",
        "--app",
        "web",
        "--image",
        "web:2",
        "--strategy",
        "red-black",
        "--rollback-on-failure",
        "--marathon-url",
        marathon.url,
        *extra,
    )


def assert_restored(marathon: MarathonEmulator) -> None:
    old, new = marathon.app("/web-v000"), marathon.app("/web-v001")
    assert old is not None and new is not None
    assert old["instances"] == 2 and "treadle.disabled-instances" not in old["labels"]
    assert new["instances"] == 0 and new["labels"]["treadle.disabled-instances"] == "2"


def test_a_422_after_a_change_is_a_failure_and_rolls_back(marathon: MarathonEmulator) -> None:
    seeded(marathon)
    marathon.faults.append(
        answer_when(
            disabling_web_v000,
            lambda request: Response(422, {"message": "Object is not valid", "details": []}),
        )
    )
    outcome = red_black(marathon)
    assert outcome.code == 1, outcome
    assert outcome.result is not None and outcome.result["status"] == "failed"
    assert outcome.result["rolled_back"] is True
    assert "rejected PUT /v2/apps/web-v000" in outcome.result["error"]["message"]
    assert_restored(marathon)


def test_an_admin_router_page_after_a_change_is_a_failure_not_unreachable(
    marathon: MarathonEmulator,
) -> None:
    seeded(marathon)
    marathon.faults.append(
        first(
            1,
            lambda request: html_page(401, "Authorization Required"),
            methods=("PUT",),
        )
    )
    outcome = red_black(marathon)
    assert outcome.code == 1, outcome
    assert outcome.result is not None and outcome.result["rolled_back"] is True
    assert_restored(marathon)


def test_a_bad_spec_found_by_marathon_before_any_change_is_still_bad_input(
    marathon: MarathonEmulator,
) -> None:
    marathon.faults.append(
        first(1, lambda request: Response(422, {"message": "Object is not valid"}), ("POST",), 1)
    )
    outcome = treadle("deploy", "--app", "web", "--image", "web:1", "--marathon-url", marathon.url)
    assert outcome.code == 2, outcome
    assert marathon.app_changes() == [r for r in marathon.app_changes() if r.method == "POST"]
    assert marathon.app("/web-v000") is None


def test_an_output_that_cannot_be_written_is_refused_before_acting(
    marathon: MarathonEmulator, tmp_path: Path
) -> None:
    read_only = tmp_path / "result.json"
    read_only.write_text("{}")
    read_only.chmod(stat.S_IRUSR)
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    for flag, path in (("--output", read_only), ("--dotenv", not_a_folder / "deploy.env")):
        outcome = treadle(
            "deploy",
            "--app",
            "web",
            "--image",
            "web:1",
            flag,
            str(path),
            "--marathon-url",
            marathon.url,
        )
        assert outcome.code == 2, outcome
        assert flag in outcome.stderr
        assert marathon.mutating_requests() == []


def test_a_result_that_cannot_be_written_after_a_change_is_a_failure(
    marathon: MarathonEmulator,
) -> None:
    if not os.path.exists("/dev/full"):
        return
    outcome = treadle(
        "deploy",
        "--app",
        "web",
        "--image",
        "web:1",
        "--output",
        "/dev/full",
        "--marathon-url",
        marathon.url,
    )
    assert outcome.code == 1, outcome
    assert "cannot write the result" in outcome.stderr
    assert marathon.app("/web-v000") is not None
