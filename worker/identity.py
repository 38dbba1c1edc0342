"""Who this Worker is on the network: the worker_ip / worker_address / worker_hostname fields."""

from __future__ import annotations

import functools
import socket
from typing import Any


@functools.cache
def worker_identity() -> dict[str, Any]:
    hostname = socket.gethostname()
    addresses: list[str] = []
    try:
        for *_, sockaddr in socket.getaddrinfo(hostname, None, proto=socket.IPPROTO_TCP):
            address = str(sockaddr[0])
            if address not in addresses:
                addresses.append(address)
    except OSError:
        pass
    fqdn = socket.getfqdn()
    return {
        "worker_hostname": hostname,
        "worker_ip": addresses,
        "worker_address": sorted({fqdn, hostname}),
    }
