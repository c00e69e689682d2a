"""Where channel settings may point: ``GATEWAY_CHANNEL_ALLOWED_NETWORKS``.

An account admin chooses the AMI host of a channel; without a limit the gateway
would open TCP connections to any service it can reach (a private Redis, a
cloud metadata endpoint). The operator names what is allowed:

- ``10.0.0.0/8``, ``192.168.1.20``, ``fd00::/8``: addresses and networks;
- ``pbx.example.com``: that host name, wherever it resolves (the operator vouches
  for its DNS); ``*.example.com``: any name under ``example.com``.

Any other host name is allowed only when every address it resolves to is in a
listed network, checked again at each connect (:meth:`NetworkPolicy.resolve`),
and the connection goes to the address that was checked, so a DNS answer that
changes between the check and the connect cannot redirect it.
An empty policy allows everything (the default: self-hosted PBXs live on private networks).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class NetworkRefused(Exception):
    """The host is not allowed by ``GATEWAY_CHANNEL_ALLOWED_NETWORKS``; the message names no address."""


def _address(host: str) -> IpAddress | None:
    try:
        addr = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


class NetworkPolicy:
    def __init__(self, networks: Sequence[IpNetwork] = (), names: Sequence[str] = ()) -> None:
        self.networks = tuple(networks)
        self.names = tuple(n.lower().rstrip(".") for n in names)

    @classmethod
    def parse(cls, text: str | None) -> NetworkPolicy:
        """From the comma-separated setting; ``ValueError`` naming the entry that is neither a network nor a name."""
        networks: list[IpNetwork] = []
        names: list[str] = []
        for raw in (text or "").split(","):
            entry = raw.strip()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
                continue
            except ValueError:
                pass
            label = entry.removeprefix("*.")
            if not label or any(c in label for c in "/:*[] ") or label.startswith(".") or ".." in label:
                raise ValueError(f"{entry!r} is neither a network (10.0.0.0/8) nor a host name (pbx.example.com)")
            names.append(entry)
        return cls(networks, names)

    @property
    def allows_any(self) -> bool:
        return not self.networks and not self.names

    def _named(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        for name in self.names:
            if name.startswith("*."):
                if host.endswith(name[1:]):
                    return True
            elif host == name:
                return True
        return False

    def _in_networks(self, addr: IpAddress) -> bool:
        return any(addr in net for net in self.networks)

    def check_address(self, addr: str) -> None:
        ip = _address(addr)
        if ip is None or not self._in_networks(ip):
            raise NetworkRefused("the host is not in GATEWAY_CHANNEL_ALLOWED_NETWORKS")

    async def resolve(self, host: str, port: int) -> list[str]:
        """The addresses to connect to, each one allowed; ``NetworkRefused`` when the host is not allowed.

        ``[host]`` as given when the policy allows anything or names the host
        (the connect resolves it as usual). Otherwise the host is resolved here
        and refused if any of its addresses is outside the listed networks.
        """
        if self.allows_any or self._named(host):
            return [host]
        if _address(host) is not None:
            self.check_address(host)
            return [host]
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise NetworkRefused("the host name does not resolve, so it cannot be checked against "
                                 "GATEWAY_CHANNEL_ALLOWED_NETWORKS") from exc
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        if not addresses:
            raise NetworkRefused("the host name does not resolve")
        for addr in addresses:
            self.check_address(addr)
        return addresses
