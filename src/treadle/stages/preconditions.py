"""check-preconditions: every check must hold before a pipeline goes on (Spinnaker's
CheckPreconditions): expressions that must be truthy over the context, and cluster sizes
compared with an expected number. Reads only; exit 3 when a check fails, with every
check and its actual value in the result."""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from treadle.errors import InputError, Refused
from treadle.naming import parse_cluster
from treadle.stages.runtime import Runtime
from treadle.stages.selection import cluster_groups

if TYPE_CHECKING:
    from treadle.context import Context

COMPARISONS: dict[str, Callable[[int, int], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    ">=": operator.ge,
    ">": operator.gt,
}


@dataclass(frozen=True)
class ClusterSize:
    cluster: str
    comparison: str
    expected: int
    region: str | None = None
    only_enabled: bool = False

    def check(self) -> ClusterSize:
        parse_cluster(self.cluster)
        if self.comparison not in COMPARISONS:
            raise InputError(
                f"unknown --comparison {self.comparison!r}: choose one of {' '.join(COMPARISONS)}"
            )
        if self.expected < 0:
            raise InputError(f"--expected must be 0 or more, not {self.expected}")
        return self


def truthy(value: Any) -> bool:
    """JMESPath's truth: false, null, and empty strings, lists and objects are false."""
    return value not in (False, None, "", [], {})


def check_preconditions(
    rt: Runtime, context: Context, expressions: tuple[str, ...], sizes: tuple[ClusterSize, ...]
) -> dict[str, object]:
    if not expressions and not sizes:
        raise InputError(
            "give a check: --expression '{{ ... }}', or --cluster-size with --comparison and --expected"
        )
    sizes = tuple(s.check() for s in sizes)
    checks: list[dict[str, object]] = []
    for expression in expressions:
        actual = context.search(expression, "--expression")
        checks.append({"check": expression, "actual": actual, "passed": truthy(actual)})
    for size in sizes:
        region = rt.provider.check_region(size.region or rt.provider.default_region)
        groups = cluster_groups(rt, region, parse_cluster(size.cluster))
        count = len([g for g in groups if g.enabled or not size.only_enabled])
        what = "enabled server groups" if size.only_enabled else "server groups"
        checks.append(
            {
                "check": f"{what} of {size.cluster} in {region} {size.comparison} {size.expected}",
                "actual": count,
                "expected": size.expected,
                "passed": COMPARISONS[size.comparison](count, size.expected),
            }
        )
    for check in checks:
        mark = "holds" if check["passed"] else "FAILS"
        rt.console.info(f"{mark}: {check['check']} (actual: {check['actual']!r})")
    failed = [c for c in checks if not c["passed"]]
    fields: dict[str, object] = {"checks": checks, "passed": not failed}
    if failed:
        raise Refused(
            f"{len(failed)} of {len(checks)} preconditions failed: "
            + "; ".join(f"{c['check']} (actual: {c['actual']!r})" for c in failed),
            fields=fields,
        )
    return fields
