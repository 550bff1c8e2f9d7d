"""Serve the Marathon emulator on 127.0.0.1 to try treadle by hand:

    PYTHONPATH=tests python -m emulator --port 8080

then point treadle at it with --marathon-url http://127.0.0.1:8080. Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import threading

from emulator import MarathonEmulator


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m emulator",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument(
        "--deploy-seconds",
        type=float,
        default=1.0,
        help="how long a deployment stays listed (default 1)",
    )
    parser.add_argument(
        "--failing-image",
        action="append",
        default=[],
        help="an image whose tasks keep failing (repeatable)",
    )
    args = parser.parse_args()
    emulator = MarathonEmulator(
        deploy_seconds=args.deploy_seconds, task_start_seconds=0.5, health_seconds=0.5
    )
    emulator.failing_images.update(args.failing_image)
    url = emulator.start(port=args.port)
    print(f"Marathon emulator at {url} (Ctrl-C stops it)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()


if __name__ == "__main__":
    main()
