"""Errors that end a stage, each carrying the exit code it means.

    TreadleError                 exit 1 unless a subclass says otherwise
    ├── InputError               exit 2: bad flags, names, spec, context or expression;
    │                                    raised before anything is changed
    ├── Refused                  exit 3: a safeguard said no (traffic guard, ambiguity)
    ├── ProviderUnavailable      exit 4: the provider cannot be reached or refused the
    │                                    credentials; nothing was changed
    ├── ProviderError            exit 1: the provider answered an error mid-stage
    │   └── Conflict             exit 1: the resource is locked or exists already
    ├── NotFound                 exit 1: nothing matched what the stage acts on
    ├── StageFailed              exit 1: the stage ran and did not reach its goal
    │   └── Timeout              exit 1: not there before --timeout
    └── Cancelled                exit 1: stopped by a signal (a CI cancel)

The CLI turns any of these into one line on stderr, an `error` object in the result and
the exit code; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class TreadleError(Exception):
    exit_code = 1
    status = "failed"

    def __init__(self, message: str, *, fields: dict[str, object] | None = None) -> None:
        super().__init__(message)
        # Stage fields known when the error happened (the server group it created, whether
        # it rolled back), so that the result written on failure still says them.
        self.fields = dict(fields or {})

    @property
    def type(self) -> str:
        return type(self).__name__

    def __str__(self) -> str:
        return self.args[0] if self.args else self.type


class InputError(TreadleError):
    exit_code = 2


class Refused(TreadleError):
    exit_code = 3
    status = "refused"


class ProviderUnavailable(TreadleError):
    exit_code = 4


class ProviderError(TreadleError):
    pass


class Conflict(ProviderError):
    pass


class NotFound(TreadleError):
    pass


class StageFailed(TreadleError):
    pass


class Timeout(StageFailed):
    pass


class Cancelled(TreadleError):
    pass
