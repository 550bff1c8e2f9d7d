"""treadle verify, and the verify file that `deploy --verify FILE` reads (the same keys
as the options, spelled as they are: `min-success-ratio`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from treadle.cli.application import option
from treadle.cli.options import Common, stage_command
from treadle.cli.runner import run_stage
from treadle.errors import InputError

if TYPE_CHECKING:
    from treadle.context import Context
    from treadle.stages.runtime import Runtime
    from treadle.stages.verify import Check


@stage_command("verify", "common")
def verify_command(
    url: Annotated[
        list[str] | None,
        option(
            "--url",
            help="An http(s) URL to check; repeatable (default: the endpoints of the deploy "
            "result given as --context deploy=deploy.json).",
        ),
    ] = None,
    path: Annotated[
        str | None, option("--path", help="With a deploy's endpoints: the path asked for: /.")
    ] = None,
    requests: Annotated[
        str | None,
        option(
            "--requests",
            help="Requests in all, round-robin over the URLs (default: one per URL, or as "
            "many as --duration allows).",
        ),
    ] = None,
    concurrency: Annotated[
        str | None, option("--concurrency", help="At most this many requests at once: 1.")
    ] = None,
    duration: Annotated[
        str | None,
        option("--duration", help="Start no request after this long: 30s, 2m."),
    ] = None,
    expect_status: Annotated[
        str | None,
        option(
            "--expect-status",
            metavar="STATUSES",
            help="Statuses that succeed, comma-separated: 200, 2xx, 200-399 (default 200-399).",
        ),
    ] = None,
    body_contains: Annotated[
        str | None,
        option("--body-contains", metavar="TEXT", help="A body that succeeds contains this."),
    ] = None,
    min_success_ratio: Annotated[
        str | None,
        option(
            "--min-success-ratio",
            help="Fail when fewer requests than this share (0-1] succeed: 1.",
        ),
    ] = None,
    max_p95: Annotated[
        str | None,
        option(
            "--max-p95",
            metavar="DURATION",
            help="Fail when the 95th percentile latency is above this: 250ms, 1s.",
        ),
    ] = None,
    *,
    common: Common,
) -> None:
    """An HTTP smoke test or small load test of URLs, or of what a deploy made; exit 1 when
    a threshold fails. Changes nothing (--request-timeout bounds each request)."""
    from treadle.stages.verify import Check, result_urls, verify

    def body(rt: Runtime, context: Context) -> dict[str, object]:
        given = {
            "url": url or None,
            "path": path,
            "requests": requests,
            "concurrency": concurrency,
            "duration": duration,
            "expect-status": expect_status,
            "body-contains": body_contains,
            "min-success-ratio": min_success_ratio,
            "max-p95": max_p95,
            "request-timeout": common.request_timeout,
        }
        # --expect-status may come as a list from a placeholder (Check.parse takes one).
        check = Check.parse(
            {
                k: (context.render if k == "expect-status" else context.text)(v, f"--{k}")
                for k, v in given.items()
            }
        )
        if not check.urls:
            check = check.with_urls(result_urls(deploy_result(context), check.path))
            if not check.urls:
                raise InputError(
                    "the deploy result in the context has no url or endpoints (its provider "
                    "publishes none): give --url URL"
                )
        return verify(rt, check)

    run_stage("verify", common, body, uses_provider=False)


def deploy_result(context: Context) -> dict[str, Any]:
    found = context.data.get("deploy")
    if not isinstance(found, dict):
        raise InputError(
            "give --url URL, or the deploy result whose endpoints to check: "
            "--context deploy=deploy.json"
        )
    return found


def load_verify_file(path: str, context: Context) -> Check:
    """The check a verify file describes (`deploy --verify FILE`), its placeholders
    rendered against the context; bad input is an InputError of one line naming the file
    and the key. Without `url`, the check is of what the deploy makes (`Check.against`)."""
    from treadle.context import load_document
    from treadle.stages.verify import Check

    document = load_document(path, "verify file")
    if not isinstance(document, dict):
        raise InputError(
            f"verify file {path}: expected a mapping of keys such as url, requests, "
            f"min-success-ratio; found {type(document).__name__}"
        )
    return Check.parse(context.text(document, f"verify file {path}"), f"verify file {path}")
