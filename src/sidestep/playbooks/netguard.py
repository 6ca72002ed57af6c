"""Webhook URLs: public addresses only, so a playbook cannot reach into private networks.

`check_public_url` resolves the host and refuses the URL when any address it resolves to is
private, loopback, link-local, multicast, reserved or unspecified (SSRF). Known gap: the
request then resolves the name again, so a DNS answer that changes between the check and the
request (rebinding) is not caught; pinning the checked address is still to do.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

__all__ = ["PrivateAddress", "check_public_url"]


class PrivateAddress(ValueError):
    """The URL is not allowed: a private or special address, or a name that does not resolve."""


def _refused(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (address.is_private or address.is_loopback or address.is_link_local
            or address.is_multicast or address.is_reserved or address.is_unspecified
            or not address.is_global)


async def check_public_url(url: str) -> str:
    """The public IP address `url`'s host resolves to; raises `PrivateAddress`."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PrivateAddress(f"{url!r} is not an http(s) URL")
    host = parts.hostname
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, parts.port or 443, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise PrivateAddress(f"{host} does not resolve ({exc})") from exc
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    for address in addresses:
        if _refused(address):
            raise PrivateAddress(f"{host} resolves to {address}, a private or special "
                                 "address; webhooks go to public addresses only")
    return str(addresses[0])
