"""Options of the stages that make a server group (deploy, clone), declared once."""

from __future__ import annotations

from typing import Annotated

from treadle.cli.application import flag, option

MaxRemaining = Annotated[
    str | None, option("--max-remaining", help="red-black: keep at most N older server groups.")
]
Steps = Annotated[
    str | None, option("--steps", help="rolling-red-black: percentages, e.g. 25,50,100.")
]
DelayBeforeDisable = Annotated[
    str | None,
    option(
        "--delay-before-disable",
        help="red-black: wait this long between the new server group healthy and the old "
        "ones disabled.",
    ),
]
Network = Annotated[
    str | None,
    option(
        "--network",
        help="docker/swarm: server groups answer under the cluster's name on this network "
        "(made when missing), for a load balancer to follow.",
    ),
]
RollbackOnFailure = Annotated[
    bool,
    flag(
        "--rollback-on-failure",
        help="When the new server group fails, take it out and restore what the strategy touched.",
    ),
]
DestroyFailed = Annotated[
    bool,
    flag(
        "--destroy-failed",
        help="With --rollback-on-failure: destroy the failed server group instead of disabling it.",
    ),
]
