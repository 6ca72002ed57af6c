"""The one bounded GET every HTTP-based probe uses, and the one translation of httpx errors.

`fetch_capped` never reads more than `max_bytes` of a body (a gigabyte answer costs at most
that much memory) and gives up after `timeout_s` in total, however slowly the bytes drip.
`classify_error` maps what httpx raises to an `Outcome`:

| raised                                                        | outcome      |
|---------------------------------------------------------------|--------------|
| any `httpx.TimeoutException`, or the overall deadline         | `timeout`    |
| `ConnectError` "Temporary failure in name resolution"         | `servfail`   |
| `ConnectError` "Name or service not known"                    | `nxdomain`   |
| `ConnectError` "No address associated with hostname"          | `bad_answer` |
| `ConnectError` about a certificate or TLS                     | `error`      |
| any other `ConnectError` (connection refused, reset)          | `refused`    |
| any other `httpx.HTTPError`                                   | `error`      |
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass

import httpx

from sidestep.monitor.outcomes import Outcome

__all__ = ["Fetched", "FetchFailed", "classify_error", "fetch_capped"]


@dataclass(frozen=True, slots=True)
class Fetched:
    """A response: its status, at most `max_bytes` of body, and whether more was cut off;
    over TLS, when the server's certificate expires (seconds since the epoch)."""

    status: int
    body: bytes
    truncated: bool
    latency_ms: float
    cert_not_after: float | None = None


class FetchFailed(Exception):
    """No response: `outcome` says how (timeout, refused, servfail...), `detail` what was seen."""

    def __init__(self, outcome: Outcome, detail: str) -> None:
        super().__init__(detail)
        self.outcome = outcome
        self.detail = detail


def classify_error(exc: httpx.HTTPError) -> tuple[Outcome, str]:
    """The outcome and a short detail for an httpx error (see the module docstring)."""
    text = f"{type(exc).__name__}: {exc}"[:300]
    if isinstance(exc, httpx.TimeoutException):
        return Outcome.TIMEOUT, text
    if isinstance(exc, httpx.ConnectError):
        message = str(exc).lower()
        if "temporary failure in name resolution" in message:
            return Outcome.SERVFAIL, text
        if "name or service not known" in message:
            return Outcome.NXDOMAIN, text
        if "no address associated" in message:
            return Outcome.BAD_ANSWER, text
        if "certificate" in message or "ssl" in message or "tls" in message:
            return Outcome.ERROR, text
        return Outcome.REFUSED, text
    return Outcome.ERROR, text


async def fetch_capped(
    client: httpx.AsyncClient, url: str, *, timeout_s: float, max_bytes: int
) -> Fetched:
    """GET `url`, reading at most `max_bytes` of the body, all within `timeout_s`.

    Raises FetchFailed when no response came (its outcome classifies why).
    """
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout_s):
            async with client.stream("GET", url, timeout=timeout_s) as response:
                not_after = _cert_not_after(response)
                body, truncated = await _read_capped(response, max_bytes)
    except TimeoutError as exc:
        raise FetchFailed(Outcome.TIMEOUT, f"no complete answer in {timeout_s}s") from exc
    except httpx.HTTPError as exc:
        raise FetchFailed(*classify_error(exc)) from exc
    latency_ms = (time.perf_counter() - started) * 1000.0
    return Fetched(response.status_code, body, truncated, latency_ms, not_after)


def _cert_not_after(response: httpx.Response) -> float | None:
    """The notAfter of the server's certificate, when the answer came over verified TLS."""
    stream = response.extensions.get("network_stream")
    ssl_object = stream.get_extra_info("ssl_object") if stream is not None else None
    cert = ssl_object.getpeercert() if isinstance(ssl_object, ssl.SSLObject) else None
    not_after = cert.get("notAfter") if cert else None
    return float(ssl.cert_time_to_seconds(not_after)) if isinstance(not_after, str) else None


async def _read_capped(response: httpx.Response, max_bytes: int) -> tuple[bytes, bool]:
    """At most `max_bytes` of the body, and True when the body was longer (or said it was)."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        return b"", True
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():  # decoded: the cap is on what we hold
        room = max_bytes - size
        if len(chunk) > room:
            chunks.append(chunk[:room])
            return b"".join(chunks), True
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), False
