"""The main server path through openstacksdk, run by the client's virtualenv python.

Not a test module: ``test_openstack_cli.py`` runs it as
``<venv>/bin/python sdk_main_path.py <cloud> <flavor> <bigger flavor>`` with
``OS_CLIENT_CONFIG_FILE`` naming the ``clouds.yaml`` of ``nimbus serve``. It
prints one JSON object of what it saw (states, hosts, flavors) and exits 0, or
fails with the SDK's exception.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from typing import Any

import openstack  # type: ignore[import-not-found]  # only in the client's virtualenv

#: Seconds any one wait may take (the fake hosts answer in about a second).
WAIT = 60


def wait_status(conn: Any, server: Any, status: str) -> Any:
    """Poll until ``server`` reaches ``status`` with no task state (ERROR fails)."""
    return conn.compute.wait_for_server(server, status=status, failures=["ERROR"],
                                        interval=0.5, wait=WAIT)


def wait_idle(conn: Any, server: Any, status: str) -> Any:
    """Poll until ``server`` is in ``status`` and its task is done (stop, start and
    confirm answer at once; their work follows)."""
    end = time.monotonic() + WAIT
    while True:
        server = conn.compute.get_server(server.id)
        if server.status == status and server.task_state is None:
            return server
        if server.status == "ERROR" or time.monotonic() > end:
            raise RuntimeError(f"server {server.id} is {server.status}/{server.task_state}, "
                               f"not {status}")
        time.sleep(0.5)


def main(cloud: str, flavor_name: str, bigger_name: str) -> dict[str, Any]:
    """Image upload, keypair, server create, reboot, stop/start, resize + confirm, delete."""
    conn = openstack.connect(cloud=cloud)
    seen: dict[str, Any] = {}
    flavor = conn.compute.find_flavor(flavor_name, ignore_missing=False)
    bigger = conn.compute.find_flavor(bigger_name, ignore_missing=False)

    with tempfile.NamedTemporaryFile(suffix=".raw") as disk:
        disk.write(os.urandom(100_000))
        disk.flush()
        image = conn.image.create_image(name="sdk-img", filename=disk.name,
                                        disk_format="raw", container_format="bare")
    image = conn.image.get_image(image.id)
    seen["image"] = [image.status, image.size]

    keypair = conn.compute.create_keypair(name="sdk-key")
    seen["keypair"] = [keypair.name, bool(keypair.private_key), bool(keypair.fingerprint)]

    server = conn.compute.create_server(name="sdk-vm", image_id=image.id,
                                       flavor_id=flavor.id, key_name=keypair.name,
                                       networks="auto")
    server = wait_status(conn, server, "ACTIVE")
    seen["created"] = [server.status, bool(server.addresses), server.compute_host]

    conn.compute.reboot_server(server, "SOFT")
    time.sleep(0.5)  # the reboot's task state shows before it is idle again
    seen["rebooted"] = wait_idle(conn, server, "ACTIVE").status

    conn.compute.stop_server(server)
    seen["stopped"] = wait_idle(conn, server, "SHUTOFF").status
    conn.compute.start_server(server)
    seen["started"] = wait_idle(conn, server, "ACTIVE").status

    conn.compute.resize_server(server, bigger.id)
    server = wait_status(conn, server, "VERIFY_RESIZE")
    seen["resized"] = [server.status, server.flavor.original_name]
    conn.compute.confirm_server_resize(server)
    server = wait_idle(conn, server, "ACTIVE")
    seen["confirmed"] = [server.status, server.flavor.original_name]

    conn.compute.delete_server(server)
    conn.compute.wait_for_delete(server, interval=0.5, wait=WAIT)
    seen["left"] = [s.name for s in conn.compute.servers()]
    conn.compute.delete_keypair(keypair)
    conn.image.delete_image(image)
    return seen


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:4])))
