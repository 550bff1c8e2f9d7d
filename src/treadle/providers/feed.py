"""A provider's event stream followed as a signal to look again: what Marathon's event
stream, the Mesos master's and the Docker engine's have in common.

A daemon thread follows the stream from the first wait that asks for it to the end of
the stage. Each wait registers the keys it is about (an app id, a job run's id); news
naming a key wakes its waits, which then read the state through the provider's API: an
event never carries state here, only the news that state changed. The stream counts as
live once the service has confirmed the subscription (so a proxy that buffers a stream
never passes for a live one); while it is live, waits poll only as a safety net. When
the stream is refused, or keeps breaking, the thread says so once and gives up, and the
waits poll as they would without it: news only ever makes a wait quicker.
"""

from __future__ import annotations

import contextlib
import random
import threading
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

from treadle.console import Console
from treadle.waiting import SAFETY_NET_POLL, Wakeup

# Attempts in a row that end before the stream attaches, before falling back for good.
ATTEMPTS = 5


class StreamRefused(Exception):
    """The stream is refused with an answer that another attempt would only repeat."""


class StreamBroken(Exception):
    """The stream failed this time; another attempt may work."""


class Feed:
    """Follows one event stream and brings each wait the news of its keys."""

    # How the console names the stream when it is given up: "Marathon's event stream".
    title: ClassVar[str]
    # How often a wait polls while the stream is live, in case news got lost or a change
    # brings no news of its own.
    safety_net: ClassVar[float] = SAFETY_NET_POLL

    def __init__(self, console: Console) -> None:
        self.console = console
        self._lock = threading.Lock()
        self._waits: dict[str, set[Wakeup]] = {}
        self._live = False
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    # -- what a stream does differently ------------------------------------------------

    def _stream(self) -> contextlib.AbstractContextManager[Any]:
        """The stream, opened; StreamRefused or StreamBroken when it cannot be."""
        raise NotImplementedError

    def _read(self, stream: Any) -> bool:
        """Pass each event on (`_attached`, `_tell`) until the stream ends or the feed is
        closed; whether it attached."""
        raise NotImplementedError

    # -- the waits' side ---------------------------------------------------------------

    @contextlib.contextmanager
    def watching(self, key: str) -> Iterator[Wakeup]:
        """A wakeup that brings news of `key` while inside; the stream is followed from
        the first one on."""
        wakeup = Wakeup(self.safety_net)
        with self._lock:
            wakeup.live = self._live
            self._waits.setdefault(key, set()).add(wakeup)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._follow, name=type(self).__name__, daemon=True
                )
                self._thread.start()
        try:
            yield wakeup
        finally:
            with self._lock:
                waits = self._waits[key]
                waits.discard(wakeup)
                if not waits:
                    del self._waits[key]

    def close(self) -> None:
        self._closed.set()
        self._interrupt()

    def _interrupt(self) -> None:
        """End a read that may be waiting for the stream's next event (closing the
        stage's connections does it where the stream shares them)."""

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def keys(self) -> list[str]:
        """The keys some wait is about now."""
        with self._lock:
            return list(self._waits)

    # -- the thread's side -------------------------------------------------------------

    def _follow(self) -> None:
        why = self._follow_until_refused()
        self._set_live(False)
        if why is not None and not self.closed:
            self.console.info(f"{self.title} is not available ({why}): polling instead")

    def _follow_until_refused(self) -> str | None:
        """Follow the stream, reconnecting with backoff; why it was given up, or None
        once closed."""
        failures = 0
        while not self.closed:
            attached = False
            try:
                with self._stream() as stream:
                    attached = self._read(stream)
                why = "the stream ended"
            except StreamRefused as e:
                return str(e)
            except Exception as e:  # noqa: BLE001 (whatever breaks the news, the waits poll)
                if self.closed:  # the stage ended and closed the connection under it
                    return None
                why = str(e) or type(e).__name__
            self._set_live(False)
            failures = 1 if attached else failures + 1
            if failures >= ATTEMPTS:
                return why
            self._closed.wait(min(8.0, 0.5 * 2 ** (failures - 1)) * random.uniform(0.75, 1.25))
        return None

    def _attached(self) -> None:
        self._set_live(True)

    def _set_live(self, live: bool) -> None:
        with self._lock:
            self._live = live
            waits = [w for ws in self._waits.values() for w in ws]
        for wakeup in waits:
            wakeup.live = live
            if live:
                # What happened before the stream (re)attached is looked at too.
                wakeup.wake()

    def _tell(self, keys: Iterable[str] | None, *, decisive: bool) -> None:
        """News of `keys` (None: of any, when the event does not say): the waits on them
        look at once when `decisive`, soon otherwise (see Wakeup)."""
        with self._lock:
            if keys is None:
                waits = [w for ws in self._waits.values() for w in ws]
            else:
                waits = [w for key in keys for w in self._waits.get(key, ())]
        for wakeup in waits:
            if decisive:
                wakeup.wake()
            else:
                wakeup.nudge()
