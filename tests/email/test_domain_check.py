"""check-domain against a local DNS server (dnslib) serving test records."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from dnslib import QTYPE, RCODE, RR, TXT, DNSRecord

from sidestep.email.dkim import DkimAlgorithm, DkimKey, dns_record, generate_key
from sidestep.email.domain_check import check_domain

KEY = DkimKey("good.example", "s1", DkimAlgorithm.RSA, generate_key(DkimAlgorithm.RSA))
ZONE: dict[str, list[str]] = {
    "good.example.": ["v=spf1 include:_spf.mail.example -all", "google-site-verification=x"],
    "s1._domainkey.good.example.": [dns_record(KEY)],
    "_dmarc.good.example.": ["v=DMARC1; p=reject; rua=mailto:d@good.example"],
    "open.example.": ["v=spf1 +all"],
    "_dmarc.open.example.": ["v=DMARC1; p=none"],
    "two.example.": ["v=spf1 -all", "v=spf1 mx -all"],
    "_dmarc.two.example.": ["v=DMARC1; p=bogus"],
    "s1._domainkey.two.example.": ["v=DKIM1; k=rsa; p="],
}
SERVFAIL = {"broken.example.", "_dmarc.broken.example."}


class Server(asyncio.DatagramProtocol):
    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        request = DNSRecord.parse(data)
        reply = request.reply()
        name = str(request.q.qname)
        if name in SERVFAIL:
            reply.header.rcode = RCODE.SERVFAIL
        elif name not in ZONE:
            reply.header.rcode = RCODE.NXDOMAIN
        elif request.q.qtype == QTYPE.TXT:
            for value in ZONE[name]:
                chunks = [value[i:i + 255] for i in range(0, len(value), 255)]
                reply.add_answer(RR(name, QTYPE.TXT, rdata=TXT(chunks), ttl=60))
        self.transport.sendto(reply.pack(), addr)


@pytest.fixture
async def dns_port() -> AsyncIterator[int]:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(Server, local_addr=("127.0.0.1", 0))
    yield transport.get_extra_info("sockname")[1]
    transport.close()


async def check(domain: str, port: int) -> dict[str, Any]:
    findings = await check_domain(domain, selectors=["s1"], nameserver="127.0.0.1", port=port,
                                  timeout_s=1)
    return {f.record: f for f in findings}


async def test_a_well_set_domain_passes_all_three(dns_port: int) -> None:
    found = await check("good.example", dns_port)
    assert [found[r].verdict for r in ("spf", "dkim:s1", "dmarc")] == ["ok", "ok", "ok"]
    assert "rejects" in found["spf"].explanation
    assert "rsa" in found["dkim:s1"].explanation


async def test_it_explains_what_is_wrong(dns_port: int) -> None:
    found = await check("open.example", dns_port)
    assert found["spf"].verdict == "error" and "+all" in found["spf"].explanation
    assert found["dkim:s1"].verdict == "missing"
    assert found["dmarc"].verdict == "warn" and "rua" in found["dmarc"].explanation
    found = await check("two.example", dns_port)
    assert found["spf"].verdict == "error" and "more than one" in found["spf"].explanation
    assert found["dkim:s1"].verdict == "error" and "revoked" in found["dkim:s1"].explanation
    assert found["dmarc"].verdict == "error"
    found = await check("nothing.example", dns_port)
    assert {f.verdict for f in found.values()} == {"missing"}


async def test_a_failing_resolver_is_an_error_not_a_missing_record(dns_port: int) -> None:
    found = await check("broken.example", dns_port)
    assert found["spf"].verdict == "error" and "failed" in found["spf"].explanation
    assert found["dmarc"].verdict == "error"


async def test_it_refuses_a_name_that_is_not_a_domain() -> None:
    with pytest.raises(ValueError):
        await check_domain("not a domain;rm -rf", nameserver="127.0.0.1", port=1)
