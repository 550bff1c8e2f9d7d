"""The `treadle` command and `python -m treadle`.

`treadle --version` is answered here, before the CLI and the libraries it builds on
load: it is what a CI step runs to see which treadle it has, and it should cost no more
than starting Python.
"""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        from treadle import __version__

        sys.stdout.write(f"treadle {__version__}\n")
        return
    # httpx's package imports its own command line (click, rich and pygments, all there
    # because treadle's dependencies need them) whenever they are installed: about 30 ms
    # of every stage's start, for a command treadle never runs. A None in sys.modules
    # makes that import fail, and httpx falls back to a stub.
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    from treadle.cli import main as run

    run()


if __name__ == "__main__":
    main()
