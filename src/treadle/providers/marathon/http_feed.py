"""A DC/OS event stream over HTTP, through the same client (credentials, TLS, renewal on
a 401) as every other request of the stage: Marathon's (treadle.providers.marathon.marathon_events)
and the Mesos master's (treadle.providers.marathon.mesos_events)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import httpx

from treadle.console import Console
from treadle.providers.feed import Feed, StreamBroken, StreamRefused
from treadle.providers.marathon.http import DcosClient

# Answers that another attempt would only repeat.
REFUSED = frozenset({401, 403, 404, 405, 406, 415, 501})


class HttpFeed(Feed):
    def __init__(self, client: DcosClient, console: Console) -> None:
        super().__init__(console)
        self.client = client

    def _request(self) -> contextlib.AbstractContextManager[httpx.Response]:
        """The streaming request."""
        raise NotImplementedError

    @contextlib.contextmanager
    def _stream(self) -> Iterator[httpx.Response]:
        with self._request() as response:
            why = f"{response.status_code} {response.reason_phrase}"
            if response.status_code in REFUSED:
                raise StreamRefused(why)
            if response.status_code != 200:
                raise StreamBroken(why)
            yield response
