"""Errors that end a stage, each carrying the exit code it means.

    TreadleError                 exit 1 unless a subclass says otherwise
    ├── InputError               exit 2: bad flags, names, spec, context or expression
    │   └── Rejected             exit 2: the provider refused a request as invalid (400, 422)
    ├── Refused                  exit 3: a safeguard said no (traffic guard, ambiguity)
    │   └── LeaseHeld            exit 3: another run holds the cluster lease
    ├── ProviderUnavailable      exit 4: the provider cannot be reached or refused the
    │                                    credentials
    ├── ProviderError            exit 1: the provider answered an error mid-stage
    │   ├── Conflict             exit 1: the resource is locked
    │   │   └── AlreadyExists    exit 1: the name is taken
    │   └── ServerGroupGone      exit 1: the server group no longer exists
    ├── NotFound                 exit 1: nothing matched what the stage acts on
    ├── StageFailed              exit 1: the stage ran and did not reach its goal
    │   ├── Timeout              exit 1: not there before --timeout
    │   └── LeaseLost            exit 1: another run took the cluster lease over
    ├── Cancelled                exit 1: stopped by a signal (a CI cancel)
    └── Unexpected               exit 1: anything else, a bug in treadle

Exit codes 2, 3 and 4 promise that nothing was changed. The stage runner keeps that
promise: once a stage has changed anything, such an error ends it with exit 1
(`after_change`). It turns any of these into one line on stderr, an `error` object in
the result and the exit code. Anything else is a bug: it becomes Unexpected, so that a
deploy still rolls back as asked and the result is still written (--verbose prints its
traceback).
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

    def after_change(self) -> None:
        """The stage had changed something before this happened: whatever the error, it
        is a failure (exit 1), never "nothing was changed"."""
        self.exit_code = 1
        self.status = "failed"


class InputError(TreadleError):
    exit_code = 2


class Rejected(InputError):
    """The provider refused a request as invalid: bad input while nothing was changed."""


class Refused(TreadleError):
    exit_code = 3
    status = "refused"


class LeaseHeld(Refused):
    pass


class ProviderUnavailable(TreadleError):
    exit_code = 4


class ProviderError(TreadleError):
    pass


class Conflict(ProviderError):
    pass


class AlreadyExists(Conflict):
    pass


class ServerGroupGone(ProviderError):
    def __init__(self, name: str, region: str) -> None:
        super().__init__(f"{name} no longer exists in {region}")
        self.name, self.region = name, region


class NotFound(TreadleError):
    pass


class StageFailed(TreadleError):
    pass


class Timeout(StageFailed):
    pass


class LeaseLost(StageFailed):
    pass


class Cancelled(TreadleError):
    pass


class Unexpected(TreadleError):
    """An exception no part of treadle meant to raise."""

    @classmethod
    def of(cls, error: Exception) -> Unexpected:
        found = cls(f"unexpected {type(error).__name__}: {error} (a bug in treadle)")
        found.__cause__ = error
        return found


# Errors that prove the provider did not carry out the request it answered: a stage
# that got one of these from a change has still changed nothing.
NOT_APPLIED: tuple[type[TreadleError], ...] = (InputError, Conflict, ProviderUnavailable)
