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
    from treadle.cli import main as run

    run()


if __name__ == "__main__":
    main()
