"""One module per stage: its options, turned into the stage's request. A stage's module
registers it on the command line when imported; a run imports only the stage it runs
(`register`), so that building the command line costs one stage, not all of them."""

from __future__ import annotations

import importlib
from collections.abc import Sequence

# Stage -> the module that declares it.
STAGES = {
    "find-image": "find_image",
    "deploy": "deploy",
    "clone": "clone",
    "resize": "resize",
    "destroy": "destroy",
    "disable": "enable_disable",
    "enable": "enable_disable",
    "rollback": "rollback",
    "promote": "canary",
    "abort": "canary",
    "disable-cluster": "cluster",
    "scale-down-cluster": "cluster",
    "shrink-cluster": "cluster",
    "terminate-instances": "terminate",
    "check-preconditions": "preconditions",
    "run-job": "run_job",
    "verify": "verify",
}


def register(argv: Sequence[str] = ()) -> None:
    """The stage `argv` names, or every stage (for --help, or a name that is not one)."""
    named = next((arg for arg in argv if not arg.startswith("-")), None)
    modules = [STAGES[named]] if named in STAGES else list(dict.fromkeys(STAGES.values()))
    for module in modules:
        importlib.import_module(f"{__name__}.{module}")
