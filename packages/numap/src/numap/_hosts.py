"""Remote hosts' addresses: ``'host'`` or ``'host:port'`` as NuMap takes them.

Apart from numap._remote (which needs rpyc) so that NuMap can check
``worker_remote`` when it is constructed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_PORT = 18812  # rpyc_classic's default port
DEFAULT_SSL_PORT = 18821  # rpyc_classic's default port when it serves SSL


@dataclass(frozen=True)
class HostAddress:
    """Where a remote host's classic server listens, and how to reach it."""

    host: str
    port: int
    ssl: Mapping[str, Any] | None = None

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def parse_host_spec(spec: str, ssl: Mapping[str, Any] | None = None) -> HostAddress:
    """Turn ``'host'`` or ``'host:port'`` into a HostAddress.

    The port defaults to rpyc_classic's: 18812, or 18821 when ``ssl`` options
    are given. IPv6 addresses go in brackets: ``'[::1]:18812'``.
    Raises ValueError for an empty host or a port that is not 1-65535.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(
            f"worker_remote: host {spec!r} must be a non-empty 'host' or "
            "'host:port' string"
        )
    text = spec.strip()
    port_text = None
    if text.startswith("["):
        host, closed, rest = text[1:].partition("]")
        if not closed or (rest and not rest.startswith(":")):
            raise ValueError(
                f"worker_remote: host {spec!r} is not '[address]' or '[address]:port'"
            )
        if rest:
            port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host = text
    port = DEFAULT_SSL_PORT if ssl else DEFAULT_PORT
    if port_text is not None:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(
                f"worker_remote: host {spec!r} has port {port_text!r}; "
                "give a number from 1 to 65535"
            )
        port = int(port_text)
    if not host:
        raise ValueError(f"worker_remote: host {spec!r} has no host name")
    return HostAddress(host, port, ssl)
