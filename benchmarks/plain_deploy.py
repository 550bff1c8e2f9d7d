"""The baseline treadle's own CPU time is measured against: a plain script that makes the
same Marathon requests as `treadle deploy --no-events` (take the cluster lease, read the
region, create the app, look at it on the same schedule until its deployment is done,
release the lease) with httpx, and does nothing else.

    python benchmarks/plain_deploy.py MARATHON_URL SEQUENCE
"""

from __future__ import annotations

import sys
import time

import httpx


def main() -> None:
    url, sequence = sys.argv[1], int(sys.argv[2])
    app_id = f"/web-v{sequence:03d}"
    lease = {"id": "/web.lease", "cmd": "sleep 3600", "instances": 0, "cpus": 0.01, "mem": 32}
    with httpx.Client(timeout=30) as client:
        client.post(url + "/v2/apps", json={**lease, "labels": {"holder": "plain"}})
        client.get(url + "/v2/groups", params={"embed": "group.apps"}).json()
        client.post(
            url + "/v2/apps",
            json={
                "id": app_id,
                "instances": 3,
                "container": {"type": "DOCKER", "docker": {"image": "web:1"}},
                "labels": {"treadle.cluster": "web"},
            },
        )
        pause = 0.1
        while True:
            app = client.get(
                url + "/v2/apps" + app_id,
                params=[("embed", e) for e in ("app.tasks", "app.counts", "app.deployments")],
            ).json()["app"]
            if not app["deployments"] and app["tasksRunning"] == app["instances"]:
                break
            time.sleep(pause)
            pause = min(2.0, pause * 1.5)
        client.delete(url + "/v2/apps/web.lease")


if __name__ == "__main__":
    main()
