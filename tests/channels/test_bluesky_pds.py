"""The Bluesky adapter against a real PDS: the reference implementation, @atproto/pds from npm.

The PDS runs on loopback with SQLite and a disk blob store; a few lines of JavaScript stand in
for the PLC directory (it only stores the accounts' genesis operations and serves the DID
documents they describe). Nothing leaves the machine.

Needs Node.js 18.7+ and the package installed where `SIDESTEP_TEST_PDS_DIR` points (by
default `.test-node/` at the repository root):

    npm install --prefix .test-node --no-audit --no-fund @atproto/pds@0.4.217

(0.4.217 is the newest release that runs on Node 20; 0.5.x needs Node 22.) `make test`
installs it; without it these tests fail, saying how to install it.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from sidestep.channels.adapters.bluesky import BlueskyAdapter
from sidestep.channels.errors import AuthExpired
from sidestep.domain.content import Content, MediaItem, MediaKind
from sidestep.vault import Credentials
from tests.channels.conftest import PNG_1PX

PDS_DIR = Path(os.environ.get("SIDESTEP_TEST_PDS_DIR",
                              Path(__file__).resolve().parents[2] / ".test-node"))
PDS_MODULE = PDS_DIR / "node_modules" / "@atproto" / "pds" / "dist" / "index.js"
NODE = shutil.which("node")
SERVICE = "https://pds.test"  # the adapter wants https; the transport below reroutes it
START_TIMEOUT_S = 60
pytestmark = [pytest.mark.asyncio(loop_scope="module")]


@pytest.fixture(autouse=True, scope="module")
def _pds_is_installed() -> None:
    if NODE is None:
        pytest.fail("these tests need Node.js 18.7+ for @atproto/pds; `make test` installs it")
    if not PDS_MODULE.is_file():
        pytest.fail(f"@atproto/pds is not installed in {PDS_DIR}: run `make test`, or "
                    "npm install --prefix .test-node --no-audit --no-fund @atproto/pds@0.4.217")

LAUNCHER = r"""
import http from 'node:http'
import crypto from 'node:crypto'
import fs from 'node:fs'
import { pathToFileURL } from 'node:url'

const [moduleFile, dataDir] = process.argv.slice(2)
const { PDS, envToCfg, envToSecrets, readEnv } = await import(pathToFileURL(moduleFile).href)

// The PLC directory, reduced to what a PDS needs: store a DID's operation, serve its document.
const ops = new Map()
const plc = http.createServer((req, res) => {
  const did = decodeURIComponent(req.url.slice(1).split('/')[0])
  if (req.method === 'POST') {
    let body = ''
    req.on('data', (chunk) => (body += chunk))
    req.on('end', () => { ops.set(did, JSON.parse(body)); res.writeHead(200); res.end('{}') })
    return
  }
  const op = ops.get(did)
  if (!op) { res.writeHead(404); return res.end('{"message":"DID not registered"}') }
  res.writeHead(200, { 'content-type': 'application/json' })
  res.end(JSON.stringify({
    '@context': ['https://www.w3.org/ns/did/v1'], id: did, alsoKnownAs: op.alsoKnownAs,
    verificationMethod: Object.entries(op.verificationMethods || {}).map(([k, v]) => ({
      id: `${did}#${k}`, type: 'Multikey', controller: did,
      publicKeyMultibase: v.replace('did:key:', '') })),
    service: Object.entries(op.services || {}).map(([k, v]) => ({
      id: `#${k}`, type: v.type, serviceEndpoint: v.endpoint })),
  }))
})
await new Promise((resolve) => plc.listen(0, '127.0.0.1', resolve))

fs.mkdirSync(dataDir, { recursive: true })
const hex = () => crypto.randomBytes(32).toString('hex')
Object.assign(process.env, {
  PDS_HOSTNAME: 'localhost', PDS_PORT: '0', PDS_DATA_DIRECTORY: dataDir,
  PDS_BLOBSTORE_DISK_LOCATION: `${dataDir}/blobs`, PDS_JWT_SECRET: hex(),
  PDS_ADMIN_PASSWORD: hex(), PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX: hex(),
  PDS_DID_PLC_URL: `http://127.0.0.1:${plc.address().port}`, PDS_DEV_MODE: 'true',
  PDS_INVITE_REQUIRED: 'false', PDS_SERVICE_HANDLE_DOMAINS: '.test', PDS_CRAWLERS: '',
  LOG_ENABLED: 'false',
})
const env = readEnv()
const pds = await PDS.create(envToCfg(env), envToSecrets(env))
await pds.start()
console.log(JSON.stringify({ port: pds.server.address().port }))
process.on('SIGTERM', async () => { await pds.destroy(); plc.close(); process.exit(0) })
"""


class _ToLocalPds(httpx.AsyncBaseTransport):
    """Sends https://pds.test/... to the PDS's plain-HTTP loopback port."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request.url = request.url.copy_with(scheme="http", host="127.0.0.1", port=self._port)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pds_port(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[int]:
    work = tmp_path_factory.mktemp("pds")
    launcher = work / "launch.mjs"
    launcher.write_text(LAUNCHER)
    assert NODE is not None
    process = await asyncio.create_subprocess_exec(
        NODE, str(launcher), str(PDS_MODULE), str(work / "data"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT_S)
        if not line:
            assert process.stderr is not None
            errors = (await process.stderr.read()).decode(errors="replace")[-2000:]
            pytest.fail(f"@atproto/pds did not start:\n{errors}")
        yield int(json.loads(line)["port"])
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def credentials(pds_port: int) -> Credentials:
    """A fresh account on the PDS, and an app password for it, as a channel holds them."""
    async with httpx.AsyncClient(transport=_ToLocalPds(pds_port), base_url=SERVICE) as client:
        for handle in ("brand.test", "partnershop.test"):
            created = await client.post("/xrpc/com.atproto.server.createAccount", json={
                "handle": handle, "email": f"{handle}@example.org",
                "password": "a-long-login-password"})
            assert created.status_code == 200, created.text
        session = (await client.post(
            "/xrpc/com.atproto.server.createSession",
            json={"identifier": "brand.test", "password": "a-long-login-password"})).json()
        app_password = await client.post(
            "/xrpc/com.atproto.server.createAppPassword", json={"name": "sidestep"},
            headers={"Authorization": f"Bearer {session['accessJwt']}"})
        assert app_password.status_code == 200, app_password.text
    return Credentials({"identifier": "brand.test", "service": SERVICE,
                        "app_password": app_password.json()["password"]})


@pytest_asyncio.fixture(loop_scope="module")
async def client(pds_port: int) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=_ToLocalPds(pds_port)) as http_client:
        yield http_client


async def get_record(client: httpx.AsyncClient, uri: str) -> dict[str, object]:
    repo, collection, rkey = uri.removeprefix("at://").split("/")
    response = await client.get(f"{SERVICE}/xrpc/com.atproto.repo.getRecord", params={
        "repo": repo, "collection": collection, "rkey": rkey})
    assert response.status_code == 200, response.text
    record: dict[str, object] = response.json()
    return record


async def test_it_publishes_an_image_post_with_facets_to_a_real_pds(
        client: httpx.AsyncClient, credentials: Credentials) -> None:
    adapter = BlueskyAdapter(client=client, timeout_s=20)
    image = MediaItem(MediaKind.IMAGE, "image/png", PNG_1PX, alt="A dot", filename="dot.png")
    text = "Café ☕ hello @partnershop.test, see https://example.com #launch"
    published = await adapter.publish(Content(text=text, media=(image,)), credentials,
                                      idempotency_key="pds-image")
    value = (await get_record(client, published.external_id))["value"]
    assert isinstance(value, dict)
    assert value["text"] == text
    [item] = value["embed"]["images"]
    assert item["alt"] == "A dot" and item["image"]["mimeType"] == "image/png"
    raw = text.encode()
    assert sorted(raw[f["index"]["byteStart"]:f["index"]["byteEnd"]].decode()
                  for f in value["facets"]) == ["#launch", "@partnershop.test", "https://example.com"]
    repo = published.external_id.removeprefix("at://").split("/")[0]
    blob = await client.get(f"{SERVICE}/xrpc/com.atproto.sync.getBlob", params={
        "did": repo, "cid": item["image"]["ref"]["$link"]})
    assert blob.status_code == 200 and blob.content == PNG_1PX


async def test_a_repeated_key_returns_the_same_post_and_replies_thread_under_it(
        client: httpx.AsyncClient, credentials: Credentials) -> None:
    adapter = BlueskyAdapter(client=client, timeout_s=20)
    first = await adapter.publish(Content(text="1/2"), credentials, idempotency_key="pds-once")
    again = await adapter.publish(Content(text="1/2"), credentials, idempotency_key="pds-once")
    assert again == first == await adapter.find("pds-once", credentials)
    reply = await adapter.publish(Content(text="2/2", reply_to=first.external_id), credentials,
                                  idempotency_key="pds-reply")
    value = (await get_record(client, reply.external_id))["value"]
    assert isinstance(value, dict)
    assert value["reply"]["root"]["uri"] == value["reply"]["parent"]["uri"] == first.external_id
    await adapter.delete(reply.external_id, credentials)
    assert await adapter.find("pds-reply", credentials) is None


async def test_it_checks_credentials_and_refuses_a_wrong_app_password(
        client: httpx.AsyncClient, credentials: Credentials) -> None:
    adapter = BlueskyAdapter(client=client, timeout_s=20)
    info = await adapter.check_credentials(credentials)
    assert info.name == "@brand.test" and info.account_id.startswith("did:plc:")
    with pytest.raises(AuthExpired):
        await adapter.check_credentials(Credentials({**credentials, "app_password": "nope"}))
