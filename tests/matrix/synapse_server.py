"""A real Synapse homeserver for the Matrix test tier.

Started once per test session on loopback with a generated config: SQLite, registration
only through the shared-secret admin API, rate limits raised, no federation, no TLS.
It can be stopped and started again on the same port and data, which is how the tests
simulate a homeserver outage.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

SERVER_NAME = "localhost"
STARTUP_TIMEOUT = 90.0

# Rate limits high enough that the tests never hit them by accident; a test that wants
# M_LIMIT_EXCEEDED sets a per-user override through the admin API instead.
_HIGH = {"per_second": 1000, "burst_count": 1000}


@dataclass(frozen=True, slots=True)
class RegisteredUser:
    """A user created through the admin API, with the device its registration logged in."""

    user_id: str
    password: str
    access_token: str
    device_id: str

    @property
    def localpart(self) -> str:
        return self.user_id[1:].split(":", 1)[0]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(base: Path, port: int, shared_secret: str) -> dict[str, object]:
    return {
        "server_name": SERVER_NAME,
        "pid_file": str(base / "homeserver.pid"),
        "listeners": [
            {
                "port": port,
                "bind_addresses": ["127.0.0.1"],
                "type": "http",
                "tls": False,
                "x_forwarded": False,
                "resources": [{"names": ["client"], "compress": False}],
            }
        ],
        "database": {"name": "sqlite3", "args": {"database": str(base / "homeserver.db")}},
        "log_config": str(base / "log.yaml"),
        "media_store_path": str(base / "media"),
        "signing_key_path": str(base / "signing.key"),
        "registration_shared_secret": shared_secret,
        "macaroon_secret_key": secrets.token_hex(32),
        "form_secret": secrets.token_hex(32),
        "enable_registration": False,
        "report_stats": False,
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "federation_domain_whitelist": [],
        "presence": {"enabled": False},
        "url_preview_enabled": False,
        "enable_metrics": False,
        "rc_message": _HIGH,
        "rc_registration": _HIGH,
        "rc_login": {"address": _HIGH, "account": _HIGH, "failed_attempts": _HIGH},
        "rc_joins": {"local": _HIGH, "remote": _HIGH},
        "rc_joins_per_room": _HIGH,
        "rc_invites": {"per_room": _HIGH, "per_user": _HIGH, "per_issuer": _HIGH},
        "rc_key_requests": _HIGH,
        "rc_room_creation": _HIGH,
        "rc_3pid_validation": _HIGH,
        "rc_admin_redaction": _HIGH,
        "rc_delayed_event_mgmt": _HIGH,
        "rc_presence": {"per_user": _HIGH},
    }


_LOG_CONFIG = """\
version: 1
formatters:
  precise:
    format: '%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(message)s'
handlers:
  file:
    class: logging.FileHandler
    formatter: precise
    filename: {path}
loggers:
  synapse.storage.SQL:
    level: WARNING
root:
  level: WARNING
  handlers: [file]
disable_existing_loggers: false
"""


class SynapseServer:
    """One Synapse process on 127.0.0.1; ``stop()``/``start()`` keep port and data."""

    def __init__(self, base_dir: Path, port: int | None = None) -> None:
        self.base_dir = base_dir
        self.port = port or free_port()
        self.shared_secret = secrets.token_hex(16)
        self.config_path = base_dir / "homeserver.yaml"
        self.log_path = base_dir / "homeserver.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._write_config()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _write_config(self) -> None:
        from signedjson.key import generate_signing_key, write_signing_keys

        self.base_dir.mkdir(parents=True, exist_ok=True)
        (self.base_dir / "media").mkdir(exist_ok=True)
        with (self.base_dir / "signing.key").open("w") as fh:
            write_signing_keys(fh, [generate_signing_key("a_test")])
        (self.base_dir / "log.yaml").write_text(_LOG_CONFIG.format(path=self.log_path))
        # JSON is valid YAML: no YAML writer needed.
        self.config_path.write_text(json.dumps(_config(self.base_dir, self.port, self.shared_secret)))

    def start(self) -> None:
        """Start the process and wait until the client API answers."""
        if self.running:
            return
        stdout = (self.base_dir / "stdout.log").open("ab")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "synapse.app.homeserver", "-c", str(self.config_path)],
            cwd=self.base_dir,
            stdout=stdout,
            stderr=subprocess.STDOUT,
            env={**os.environ, "SYNAPSE_CACHE_FACTOR": "0.5"},
        )
        stdout.close()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"synapse exited with {self._process.returncode}; see {self.base_dir}")
            try:
                with urllib.request.urlopen(f"{self.url}/_matrix/client/versions", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"synapse did not answer within {STARTUP_TIMEOUT}s; see {self.base_dir}")

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL); the database stays."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()

    # -- admin API -------------------------------------------------------------------------

    def _request(self, method: str, path: str, body: object | None = None,
                 token: str | None = None) -> dict[str, object]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(request, timeout=30) as resp:
            result: dict[str, object] = json.loads(resp.read() or b"{}")
            return result

    def register(self, localpart: str, password: str | None = None, admin: bool = False) -> RegisteredUser:
        """Register a user with the shared secret (HMAC-SHA1 over nonce, name, password, role)."""
        password = password or secrets.token_urlsafe(16)
        nonce = str(self._request("GET", "/_synapse/admin/v1/register")["nonce"])
        mac = hmac.new(self.shared_secret.encode(), digestmod=hashlib.sha1)
        mac.update(b"\x00".join([nonce.encode(), localpart.encode(), password.encode(),
                                 b"admin" if admin else b"notadmin"]))
        result = self._request("POST", "/_synapse/admin/v1/register", {
            "nonce": nonce, "username": localpart, "password": password,
            "admin": admin, "mac": mac.hexdigest(),
        })
        return RegisteredUser(str(result["user_id"]), password, str(result["access_token"]),
                              str(result["device_id"]))

    def override_ratelimit(self, admin: RegisteredUser, user_id: str,
                           messages_per_second: float, burst_count: int) -> None:
        """Give one user its own message rate limit (0, 0 = unlimited)."""
        self._request("POST", f"/_synapse/admin/v1/users/{user_id}/override_ratelimit",
                      {"messages_per_second": messages_per_second, "burst_count": burst_count},
                      token=admin.access_token)
