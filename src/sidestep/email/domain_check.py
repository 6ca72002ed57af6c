"""Look up a sending domain's SPF, DKIM and DMARC records and explain them in plain words.

`check_domain(domain, selectors=...)` returns one `Finding` per record with a verdict
(`ok`, `warn`, `missing`, `error`) and the sentence a person needs: what the record says and
what to fix. Lookups go through dnspython with an explicit timeout; a resolver address and
port can be given (the tests use a local dnslib server).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import dns.asyncresolver
import dns.exception
import dns.resolver

__all__ = ["Finding", "check_domain"]

_DMARC_POLICIES = {"none", "quarantine", "reject"}


@dataclass(frozen=True, slots=True)
class Finding:
    record: str  # spf, dkim:<selector>, dmarc
    name: str
    verdict: str  # ok, warn, missing, error
    value: str
    explanation: str


class _Lookup:
    def __init__(self, nameserver: str | None, port: int, timeout_s: float) -> None:
        self.resolver = dns.asyncresolver.Resolver(configure=nameserver is None)
        if nameserver is not None:
            self.resolver.nameservers = [nameserver]
            self.resolver.port = port
        self.resolver.lifetime = timeout_s

    async def txt(self, name: str) -> list[str] | str:
        """The TXT strings at `name` (each record's chunks joined), or an error sentence."""
        try:
            answer = await self.resolver.resolve(name, "TXT")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.Timeout:
            return f"no answer for {name} within {self.resolver.lifetime:g} s"
        except dns.exception.DNSException as exc:
            return f"the lookup of {name} failed ({type(exc).__name__})"
        return [b"".join(r.strings).decode("utf-8", "replace") for r in answer]


def _spf(domain: str, records: list[str]) -> Finding:
    spf = [r for r in records if r.lower().startswith("v=spf1")]
    if not spf:
        return Finding("spf", domain, "missing", "",
                       "no SPF record: receivers cannot tell which servers may send for "
                       f"{domain}; publish a TXT record like `v=spf1 include:<your provider> -all`")
    if len(spf) > 1:
        return Finding("spf", domain, "error", " | ".join(spf),
                       "more than one SPF record: receivers treat this as a permanent error; "
                       "merge them into one")
    value = spf[0]
    terms = value.split()
    lookups = sum(1 for t in terms if re.match(r"^[+~?-]?(include:|a\b|a:|mx\b|mx:|exists:|"
                                               r"redirect=|ptr)", t))
    last = terms[-1].lower() if terms else ""
    if last in ("+all", "all"):
        return Finding("spf", domain, "error", value,
                       "`+all` lets any server on the internet send as this domain; end with "
                       "`-all` or `~all`")
    if lookups > 10:
        return Finding("spf", domain, "error", value,
                       f"{lookups} DNS lookups; SPF allows 10, so receivers fail the check")
    if last == "?all" or not last.endswith("all") and not last.startswith("redirect="):
        return Finding("spf", domain, "warn", value,
                       "the record ends without `-all` or `~all`, so it vouches for no one")
    strength = "rejects" if last == "-all" else "marks as suspicious"
    return Finding("spf", domain, "ok", value,
                   f"SPF names the allowed senders and {strength} the rest "
                   f"({lookups} of 10 DNS lookups used)")


def _dkim(domain: str, selector: str, records: list[str]) -> Finding:
    name = f"{selector}._domainkey.{domain}"
    if not records:
        return Finding(f"dkim:{selector}", name, "missing", "",
                       f"no DKIM key at {name}: publish the record `sidestep campaign "
                       "dkim-keygen` printed, or check the selector")
    value = " ".join(records)
    tags = dict((k.strip().lower(), v.strip()) for k, _, v in
                (part.partition("=") for part in value.split(";") if "=" in part))
    if not tags.get("p"):
        return Finding(f"dkim:{selector}", name, "error", value,
                       "the key is empty (p=): the key was revoked, signatures fail")
    kind = tags.get("k", "rsa").lower()
    if kind == "rsa" and len(tags["p"]) < 300:
        return Finding(f"dkim:{selector}", name, "warn", value,
                       "the RSA key looks shorter than 2048 bits; Gmail and Yahoo expect "
                       "at least 1024, and 2048 is the norm")
    if kind not in ("rsa", "ed25519"):
        return Finding(f"dkim:{selector}", name, "error", value, f"unknown key type k={kind}")
    testing = " (t=y: receivers treat it as a test)" if "y" in tags.get("t", "") else ""
    return Finding(f"dkim:{selector}", name, "ok", value[:120],
                   f"a {kind} DKIM key is published{testing}")


def _dmarc(domain: str, records: list[str]) -> Finding:
    name = f"_dmarc.{domain}"
    dmarc = [r for r in records if r.lower().replace(" ", "").startswith("v=dmarc1")]
    if not dmarc:
        return Finding("dmarc", name, "missing", "",
                       "no DMARC record: Gmail and Yahoo require one of bulk senders; start "
                       "with `v=DMARC1; p=none; rua=mailto:dmarc@" + domain + "`")
    if len(dmarc) > 1:
        return Finding("dmarc", name, "error", " | ".join(dmarc),
                       "more than one DMARC record: receivers ignore both")
    value = dmarc[0]
    tags = dict((k.strip().lower(), v.strip()) for k, _, v in
                (part.partition("=") for part in value.split(";") if "=" in part))
    policy = tags.get("p", "").lower()
    if policy not in _DMARC_POLICIES:
        return Finding("dmarc", name, "error", value,
                       "the record has no valid p= (none, quarantine or reject)")
    report = "" if "rua" in tags else "; add rua=mailto:... to receive aggregate reports"
    if policy == "none":
        return Finding("dmarc", name, "warn", value,
                       "policy none: receivers only report, they do not act on failures" + report)
    return Finding("dmarc", name, "ok", value,
                   f"policy {policy}: mail failing SPF and DKIM alignment is {policy}ed" + report)


async def check_domain(domain: str, *, selectors: Sequence[str] = (),
                       nameserver: str | None = None, port: int = 53,
                       timeout_s: float = 5.0) -> list[Finding]:
    """SPF, then DKIM for each selector, then DMARC; a lookup failure is an `error`."""
    domain = domain.strip().rstrip(".").lower()
    if not re.fullmatch(r"(?=.{1,253}$)([a-z0-9-]{1,63}\.)+[a-z0-9-]{2,63}", domain):
        raise ValueError(f"{domain!r} is not a domain name")
    lookup = _Lookup(nameserver, port, timeout_s)
    checks: list[tuple[str, str, Callable[[list[str]], Finding]]] = [
        ("spf", domain, partial(_spf, domain))]
    checks += [(f"dkim:{s}", f"{s}._domainkey.{domain}", partial(_dkim, domain, s))
               for s in selectors]
    checks.append(("dmarc", f"_dmarc.{domain}", partial(_dmarc, domain)))
    findings = []
    for record, name, judge in checks:
        records = await lookup.txt(name)
        if isinstance(records, str):
            findings.append(Finding(record, name, "error", "", records))
        else:
            findings.append(judge(records))
    return findings
