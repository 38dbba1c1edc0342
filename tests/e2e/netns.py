"""A small lab of network namespaces joined by a bridge, so each host of a test has its own address.

Each host gets a namespace with `lo` and `eth0` (an address in 10.231.0.0/24, which exists
only inside the lab); the other end of its veth pair sits on a bridge in the lab's own
namespace. Code runs "on" a host by entering its namespace with setns(2) in the calling
thread: sockets opened and processes started there belong to that host.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field

CLONE_NEWNET = 0x40000000
SUBNET = "10.231.0"
_libc = ctypes.CDLL(None, use_errno=True)


def unavailable_reason() -> str | None:
    """Why the lab cannot run here (None when it can)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "the 'ip' command (iproute2) is missing"
    probe = f"shprobe{secrets.token_hex(3)}"
    try:
        subprocess.run(["ip", "netns", "add", probe], check=True, capture_output=True, timeout=10)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
        return f"'ip netns add' does not work here: {error}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=10)
    return None


def ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"setns failed: {os.strerror(error)}")


@dataclass
class Lab:
    prefix: str = field(default_factory=lambda: f"sh{secrets.token_hex(3)}")
    hosts: dict[str, str] = field(default_factory=dict)  # name -> address

    @property
    def switch(self) -> str:
        return f"{self.prefix}-lan"

    def namespace(self, host: str) -> str:
        return f"{self.prefix}-{host}"

    def create(self) -> Lab:
        ip("netns", "add", self.switch)
        ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        ip("-n", self.switch, "link", "set", "br0", "up")
        return self

    def add_host(self, host: str, last_octet: int) -> str:
        namespace, address = self.namespace(host), f"{SUBNET}.{last_octet}"
        port = f"p{last_octet}"
        ip("netns", "add", namespace)
        ip("-n", self.switch, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", namespace)
        ip("-n", self.switch, "link", "set", port, "master", "br0", "up")
        ip("-n", namespace, "addr", "add", f"{address}/24", "dev", "eth0")
        ip("-n", namespace, "link", "set", "eth0", "up")
        ip("-n", namespace, "link", "set", "lo", "up")
        self.hosts[host] = address
        return address

    @contextlib.contextmanager
    def on(self, host: str) -> Iterator[str]:
        """Run the block in `host`'s network namespace (this thread only); yields its address."""
        previous = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            target = os.open(f"/run/netns/{self.namespace(host)}", os.O_RDONLY)
            try:
                _setns(target)
            finally:
                os.close(target)
            try:
                yield self.hosts[host]
            finally:
                _setns(previous)
        finally:
            os.close(previous)

    def destroy(self) -> None:
        for host in self.hosts:
            subprocess.run(["ip", "netns", "del", self.namespace(host)], capture_output=True, timeout=10)
        subprocess.run(["ip", "netns", "del", self.switch], capture_output=True, timeout=10)
