"""Remote hosts' addresses and SSL options, as NuMap takes them.

``worker_remote`` names hosts as ``'host'`` or ``'host:port'``;
``worker_remote_ssl`` gives their SSL options. Apart from numap._remote
(which needs rpyc) so that NuMap can check both when it is constructed.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_PORT = 18812  # rpyc_classic's default port
DEFAULT_SSL_PORT = 18821  # rpyc_classic's default port when it serves SSL
SSL_KEYS = frozenset({"keyfile", "certfile", "ca_certs", "check_hostname"})


@dataclass(frozen=True)
class HostAddress:
    """Where a remote host's classic server listens, and how to reach it."""

    host: str
    port: int
    ssl: Mapping[str, Any] | None = None

    def __str__(self) -> str:
        # As written in worker_remote: an IPv6 address in brackets.
        if ":" in self.host:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"


def parse_host_spec(spec: str, ssl: Mapping[str, Any] | None = None) -> HostAddress:
    """Turn ``'host'`` or ``'host:port'`` into a HostAddress.

    The port defaults to rpyc_classic's: 18812, or 18821 when ``ssl`` options
    are given. IPv6 addresses go in brackets: ``'[::1]:18812'`` (a bare one,
    ``'::1'``, has the default port). Raises ValueError for an empty host,
    a port that is not 1-65535, or more than one colon outside brackets
    that do not make an IPv6 address (``'127.0.0.1:80:1'``).
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
    elif ":" in text and not _is_ipv6(text):
        raise ValueError(
            f"worker_remote: host {spec!r} has more than one ':'; give "
            "'host:port', or an IPv6 address in brackets: '[::1]:18812'"
        )
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


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def ssl_plan(
    specs: list[str], ssl: Mapping[str, Any] | None
) -> dict[str, dict[str, Any] | None]:
    """The SSL options of each host spec of worker_remote; checks them.

    ``ssl`` (``worker_remote_ssl``) is None (no SSL), one dict of options
    for every host, with keys from SSL_KEYS (keyfile, certfile, ca_certs:
    paths of existing files; check_hostname: a bool), or a dict mapping
    host specs, exactly as written in worker_remote, to such dicts (hosts
    it does not name connect without SSL). A dict with any key of SSL_KEYS
    is the former (a host spec beside them is then an unknown option);
    else one that names a host of worker_remote, or whose values are all
    dicts (or None), is the latter.
    Raises TypeError or ValueError naming worker_remote_ssl, the key and
    what is allowed.
    """
    if ssl is None:
        return dict.fromkeys(specs)
    if not isinstance(ssl, Mapping):
        raise TypeError(
            "worker_remote_ssl must be a dict of SSL options or a dict "
            f"mapping host specs to such dicts; got {type(ssl).__name__}"
        )
    if not _per_host(ssl, specs):
        options = _check_ssl_options(ssl, "worker_remote_ssl")
        return dict.fromkeys(specs, options)
    strangers = set(ssl) - set(specs)
    if strangers:
        raise ValueError(
            f"worker_remote_ssl names hosts {sorted(strangers)} that are not "
            f"in worker_remote {specs}; give options for listed hosts, or "
            f"one dict with keys {sorted(SSL_KEYS)} for all"
        )
    return {
        spec: None
        if ssl.get(spec) is None
        else _check_ssl_options(ssl[spec], f"worker_remote_ssl[{spec!r}]")
        for spec in specs
    }


def _per_host(ssl: Mapping[str, Any], specs: list[str]) -> bool:
    # Options are paths and a bool, never dicts: so a misspelled option
    # ({"keyfil": ...}) is reported as an unknown option, not as a host.
    if set(ssl) & SSL_KEYS:
        return False
    if set(ssl) & set(specs):
        return True
    return all(value is None or isinstance(value, Mapping) for value in ssl.values())


def _check_ssl_options(options: Any, where: str) -> dict[str, Any]:
    if not isinstance(options, Mapping):
        raise TypeError(
            f"{where} must be a dict with keys {sorted(SSL_KEYS)}; "
            f"got {type(options).__name__}"
        )
    unknown = set(options) - SSL_KEYS
    if unknown:
        raise ValueError(
            f"{where} has unknown keys {sorted(unknown)}; use only {sorted(SSL_KEYS)}"
        )
    for key in ("keyfile", "certfile", "ca_certs"):
        path = options.get(key)
        if path is not None and not os.path.isfile(path):
            raise ValueError(f"{where}[{key!r}] = {path!r} is not a file")
    if options.get("keyfile") and not options.get("certfile"):
        raise ValueError(f"{where} has a keyfile but no certfile; give both")
    check_hostname = options.get("check_hostname", True)
    if not isinstance(check_hostname, bool):
        raise TypeError(
            f"{where}['check_hostname'] must be True or False, got {check_hostname!r}"
        )
    return dict(options)
