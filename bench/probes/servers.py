"""The bench's local targets: a keep-alive HTTP/1.1 server and a UDP DNS server, both raw
asyncio protocols answering one fixed response, so that the probes (not the targets) are
what is measured. Run: `python servers.py HTTP_PORT DNS_PORT` (prints "ready")."""

from __future__ import annotations

import asyncio
import struct
import sys

BODY = b'{"status": {"indicator": "none"}}'
RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)
ANSWER_IP = bytes([127, 0, 0, 1])


class Http(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:  # GETs only: no request body
            self.buffer = self.buffer[end + 4:]
            self.transport.write(RESPONSE)  # type: ignore[attr-defined]


class Dns(asyncio.DatagramProtocol):
    """Answers any single-question query with one A record, 127.0.0.1, TTL 60."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) < 17:
            return
        end = data.index(b"\x00", 12) + 5  # the question: name, type, class
        header = data[:2] + b"\x81\x80" + b"\x00\x01\x00\x01\x00\x00\x00\x00"
        answer = b"\xc0\x0c\x00\x01\x00\x01" + struct.pack(">IH", 60, 4) + ANSWER_IP
        self.transport.sendto(header + data[12:end] + answer, addr)  # type: ignore[attr-defined]


async def main(http_port: int, dns_port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Http, "127.0.0.1", http_port, backlog=1024)
    await loop.create_datagram_endpoint(Dns, local_addr=("127.0.0.1", dns_port))
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
