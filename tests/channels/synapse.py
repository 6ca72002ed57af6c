"""A throwaway Synapse homeserver (SQLite, loopback, plain http) for adapter tests.

    with running_synapse(tmp_dir) as hs:          # generates, edits, starts, waits, stops
        brand = hs.register("brand")              # a user, via the shared-secret admin API
        room = hs.create_room(brand)
        hs.messages(brand, room)                  # what the room holds, newest first

The config comes from Synapse's own `--generate-config` and is then edited: one http
listener on 127.0.0.1 at a free port, no TLS, no federation key servers, no open
registration, a known `registration_shared_secret`, and a deliberately strict `rc_message`
(`STRICT_MESSAGES_PER_S`, `STRICT_MESSAGE_BURST`) so that one test can meet a real
M_LIMIT_EXCEEDED. Every user `register` makes is exempt from it through the admin API's
`override_ratelimit`, unless registered with `rate_limited=True`. Other limits are relaxed.

Anything that keeps Synapse from running raises `SynapseUnavailable` with the reason and the
end of its log; the test fixture turns that into a failure, never a skip.
Docs: https://element-hq.github.io/synapse/latest/usage/configuration/config_documentation.html,
https://element-hq.github.io/synapse/latest/admin_api/register_api.html,
https://element-hq.github.io/synapse/latest/admin_api/user_admin_api.html#override-ratelimiting-for-users
"""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import yaml

SERVER_NAME = "localhost"
STARTUP_LIMIT_S = 60.0
GENERATE_LIMIT_S = 60.0
STRICT_MESSAGES_PER_S = 0.01  # one message per 100 s once the burst is spent
STRICT_MESSAGE_BURST = 3
_RELAXED = {"per_second": 1000, "burst_count": 1000}


class SynapseUnavailable(RuntimeError):
    """Synapse is not installed, or could not be configured, started or reached."""


@dataclass(frozen=True, slots=True)
class SynapseUser:
    user_id: str
    access_token: str
    device_id: str


@dataclass(slots=True)
class SynapseServer:
    """A running homeserver: its URL, its admin, and the seconds each start step took."""

    base_url: str
    shared_secret: str
    process: subprocess.Popen[bytes]
    log_path: Path
    timings_s: dict[str, float] = field(default_factory=dict)
    admin: SynapseUser | None = None
    _http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30.0))

    def register(self, username: str, *, admin: bool = False,
                 rate_limited: bool = False) -> SynapseUser:
        """A new user and its access token, via /_synapse/admin/v1/register (HMAC-SHA1 of
        nonce, name, password and admin flag, keyed with the shared secret)."""
        nonce = self._ok(self._http.get(f"{self.base_url}/_synapse/admin/v1/register"))["nonce"]
        password = secrets.token_urlsafe(16)
        mac = hmac.new(self.shared_secret.encode(), digestmod=hashlib.sha1)
        mac.update(b"\x00".join([nonce.encode(), username.encode(), password.encode(),
                                 b"admin" if admin else b"notadmin"]))
        body = {"nonce": nonce, "username": username, "password": password, "admin": admin,
                "mac": mac.hexdigest()}
        answer = self._ok(self._http.post(f"{self.base_url}/_synapse/admin/v1/register",
                                          json=body))
        user = SynapseUser(answer["user_id"], answer["access_token"], answer["device_id"])
        if not rate_limited:
            by = user if admin else self.admin
            if by is None:
                raise SynapseUnavailable("register the admin first: it lifts the rate limits")
            self._ok(self._http.post(
                f"{self.base_url}/_synapse/admin/v1/users/{quote(user.user_id)}/"
                "override_ratelimit", json={"messages_per_second": 0, "burst_count": 0},
                headers=_auth(by)))
        return user

    def create_room(self, owner: SynapseUser) -> str:
        """A new private room with `owner` as its only member; returns its room id."""
        answer = self._ok(self._http.post(
            f"{self.base_url}/_matrix/client/v3/createRoom", headers=_auth(owner),
            json={"preset": "private_chat", "name": "sidestep test"}))
        return str(answer["room_id"])

    def messages(self, reader: SynapseUser, room_id: str) -> list[dict[str, Any]]:
        """The room's latest 100 `m.room.message` events (redacted ones included), newest
        first, as `reader` sees them."""
        answer = self._ok(self._http.get(
            f"{self.base_url}/_matrix/client/v3/rooms/{quote(room_id, safe='')}/messages",
            params={"dir": "b", "limit": "100", "filter": '{"types":["m.room.message"]}'},
            headers=_auth(reader)))
        return list(answer["chunk"])

    def download(self, reader: SynapseUser, mxc: str) -> httpx.Response:
        """The file behind an `mxc://` URI, from the authenticated media endpoint."""
        server, media_id = mxc.removeprefix("mxc://").split("/", 1)
        return self._http.get(
            f"{self.base_url}/_matrix/client/v1/media/download/{server}/{media_id}",
            headers=_auth(reader))

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if Synapse has not exited within 15 seconds."""
        self._http.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

    def _ok(self, response: httpx.Response) -> Any:
        if response.status_code != 200:
            raise SynapseUnavailable(f"{response.request.method} {response.request.url.path} "
                                     f"answered {response.status_code}: {response.text[:300]}")
        return response.json()


@contextmanager
def running_synapse(workdir: Path) -> Iterator[SynapseServer]:
    """Generate a config in `workdir`, start Synapse on it, yield it with an admin user,
    and stop it on exit. Raises SynapseUnavailable when any step fails."""
    if importlib.util.find_spec("synapse") is None:
        raise SynapseUnavailable(
            "the matrix-synapse package is not installed in this environment; "
            f"run `{sys.executable} -m pip install matrix-synapse`")
    started = time.monotonic()
    config_path = workdir / "homeserver.yaml"
    _run([sys.executable, "-m", "synapse.app.homeserver", "--server-name", SERVER_NAME,
          "--config-path", str(config_path), "--generate-config", "--report-stats=no",
          "--data-directory", str(workdir)], cwd=workdir)
    generated = time.monotonic()
    port, secret = _free_port(), secrets.token_hex(32)
    _edit_config(config_path, workdir=workdir, port=port, shared_secret=secret)
    log_path = workdir / "synapse.out"
    try:
        with log_path.open("wb") as out:
            process = subprocess.Popen(  # noqa: S603 - our own interpreter, fixed arguments
                [sys.executable, "-m", "synapse.app.homeserver", "--config-path",
                 str(config_path)], cwd=workdir, stdout=out, stderr=subprocess.STDOUT)
    except OSError as exc:
        raise SynapseUnavailable(f"cannot start Synapse: {exc}") from exc
    server = SynapseServer(base_url=f"http://127.0.0.1:{port}", shared_secret=secret,
                           process=process, log_path=workdir / "homeserver.log")
    try:
        _wait_until_up(server, log_path)
        server.timings_s = {"generate_config": generated - started,
                            "start": time.monotonic() - generated}
        server.admin = server.register("sidestep-admin", admin=True)
        yield server
    finally:
        server.stop()


def _run(command: list[str], *, cwd: Path) -> None:
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True,  # noqa: S603
                              timeout=GENERATE_LIMIT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise SynapseUnavailable(f"generating the Synapse config took over "
                                 f"{GENERATE_LIMIT_S:.0f} s") from exc
    except OSError as exc:
        raise SynapseUnavailable(f"cannot run {command[0]}: {exc}") from exc
    if done.returncode != 0:
        output = (done.stdout + done.stderr).decode(errors="replace")[-2000:]
        raise SynapseUnavailable(f"synapse --generate-config failed ({done.returncode}):\n"
                                 f"{output}")


def _edit_config(path: Path, *, workdir: Path, port: int, shared_secret: str) -> None:
    config = yaml.safe_load(path.read_text())
    config.update({
        "listeners": [{"port": port, "bind_addresses": ["127.0.0.1"], "type": "http",
                       "tls": False, "x_forwarded": False,
                       "resources": [{"names": ["client"], "compress": False}]}],
        "database": {"name": "sqlite3", "args": {"database": str(workdir / "homeserver.db")}},
        "enable_registration": False,
        "registration_shared_secret": shared_secret,
        "trusted_key_servers": [],  # no federation: nothing may reach out of this machine
        "suppress_key_server_warning": True,
        "report_stats": False,
        "enable_metrics": False,
        "url_preview_enabled": False,
        "presence": {"enabled": False},
        "rc_message": {"per_second": STRICT_MESSAGES_PER_S,
                       "burst_count": STRICT_MESSAGE_BURST},
        "rc_registration": _RELAXED,
        "rc_login": {"address": _RELAXED, "account": _RELAXED, "failed_attempts": _RELAXED},
        "rc_joins": {"local": _RELAXED, "remote": _RELAXED},
        "rc_invites": {"per_room": _RELAXED, "per_user": _RELAXED, "per_issuer": _RELAXED},
        "rc_room_creation": _RELAXED,
        "rc_media_create": _RELAXED,
    })
    path.write_text(yaml.safe_dump(config))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_up(server: SynapseServer, output_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_LIMIT_S
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise SynapseUnavailable(
                    f"Synapse exited with {server.process.returncode} while starting:\n"
                    f"{output_path.read_text(errors='replace')[-2000:]}\n{server.log_tail()}")
            try:
                if client.get(f"{server.base_url}/_matrix/client/versions").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    raise SynapseUnavailable(f"Synapse did not answer /_matrix/client/versions within "
                             f"{STARTUP_LIMIT_S:.0f} s:\n{server.log_tail()}")


def _auth(user: SynapseUser) -> dict[str, str]:
    return {"Authorization": f"Bearer {user.access_token}"}
