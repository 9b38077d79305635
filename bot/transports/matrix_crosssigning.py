"""Cross-signing for the bot's own device, over the client-server API (nio has none).

Clients that hide devices their owner has not cross-signed (Element, from 2026) would
otherwise hide every message the bot sends. The bot therefore owns a master key, a
self-signing key and a user-signing key (ed25519), publishes them, signs its device with
the self-signing key and the master key with its device key.

The private seeds are kept sealed by the key ring (``MatrixSessionStore``); they are
written *before* the public keys are uploaded, so a crash in between never leaves the
account with a master key nobody holds. Bootstrapping is idempotent: when the published
keys and signatures already match, nothing is uploaded.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

log = logging.getLogger(__name__)

USAGES = ("master", "self_signing", "user_signing")

JsonDict = dict[str, Any]
ApiCall = Callable[[str, str, JsonDict | None], Awaitable[tuple[int, JsonDict]]]
"""``(method, path, body) -> (HTTP status, JSON body)``, authenticated as the bot."""

DeviceSigner = Callable[[bytes], str]
"""Signs canonical JSON with the device's ed25519 key; returns unpadded base64."""


class CrossSigningError(Exception):
    """Bootstrapping failed; the message says what to do and never contains secrets."""


class SeedStore(Protocol):
    def load_cross_signing(self) -> dict[str, str] | None: ...

    def save_cross_signing(self, seeds: dict[str, str]) -> None: ...


# -- canonical JSON and ed25519 helpers --------------------------------------------------


def canonical_json(value: JsonDict) -> bytes:
    """The Matrix canonical form: sorted keys, no whitespace, UTF-8, no ``signatures``/``unsigned``."""
    stripped = {k: v for k, v in value.items() if k not in ("signatures", "unsigned")}
    return json.dumps(stripped, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")


def unpadded_b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii").rstrip("=")


def decode_unpadded_b64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def verify_signature(obj: JsonDict, user_id: str, key_id: str, public_key_b64: str) -> bool:
    """True when ``obj`` carries a valid ed25519 signature by ``key_id`` of ``user_id``."""
    signature = obj.get("signatures", {}).get(user_id, {}).get(key_id)
    if not isinstance(signature, str):
        return False
    try:
        Ed25519PublicKey.from_public_bytes(decode_unpadded_b64(public_key_b64)).verify(
            decode_unpadded_b64(signature), canonical_json(obj)
        )
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True, slots=True)
class SigningKey:
    usage: str
    seed: bytes

    @property
    def _private(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(self.seed)

    @property
    def public(self) -> str:
        return unpadded_b64(self._private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))

    @property
    def key_id(self) -> str:
        return f"ed25519:{self.public}"

    def sign(self, obj: JsonDict) -> str:
        return unpadded_b64(self._private.sign(canonical_json(obj)))


@dataclass(frozen=True, slots=True)
class CrossSigningKeys:
    master: SigningKey
    self_signing: SigningKey
    user_signing: SigningKey

    @classmethod
    def generate(cls) -> CrossSigningKeys:
        return cls(*(SigningKey(usage, os.urandom(32)) for usage in USAGES))

    @classmethod
    def from_seeds(cls, seeds: dict[str, str]) -> CrossSigningKeys:
        try:
            return cls(*(SigningKey(usage, decode_unpadded_b64(seeds[usage])) for usage in USAGES))
        except (KeyError, ValueError) as exc:
            raise CrossSigningError("the stored cross-signing seeds are incomplete") from exc

    def seeds(self) -> dict[str, str]:
        return {key.usage: unpadded_b64(key.seed) for key in (self.master, self.self_signing, self.user_signing)}

    def key_object(self, user_id: str, key: SigningKey) -> JsonDict:
        """The public key object as uploaded: sub-keys carry the master key's signature."""
        obj: JsonDict = {"user_id": user_id, "usage": [key.usage], "keys": {key.key_id: key.public}}
        if key.usage != "master":
            obj["signatures"] = {user_id: {self.master.key_id: self.master.sign(obj)}}
        return obj


# -- bootstrap ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CrossSigningStatus:
    """What ``ensure_cross_signing`` did: useful in logs and tests (public keys only)."""

    master_public: str
    self_signing_public: str
    uploaded_keys: bool
    uploaded_signatures: bool


def _published_public(query: JsonDict, field: str, user_id: str) -> str | None:
    obj = query.get(field, {}).get(user_id)
    if not isinstance(obj, dict):
        return None
    keys = list(obj.get("keys", {}).values())
    return str(keys[0]) if len(keys) == 1 else None


async def _query_own(api: ApiCall, user_id: str) -> JsonDict:
    status, body = await api("POST", "/_matrix/client/v3/keys/query", {"device_keys": {user_id: []}})
    if status != 200:
        raise CrossSigningError(f"keys/query failed with HTTP {status} ({body.get('errcode', '?')})")
    return body


async def _upload_keys(api: ApiCall, user_id: str, keys: CrossSigningKeys, password: str | None) -> None:
    """``keys/device_signing/upload`` with user-interactive auth when the server asks for it."""
    path = "/_matrix/client/v3/keys/device_signing/upload"
    body: JsonDict = {
        "master_key": keys.key_object(user_id, keys.master),
        "self_signing_key": keys.key_object(user_id, keys.self_signing),
        "user_signing_key": keys.key_object(user_id, keys.user_signing),
    }
    status, answer = await api("POST", path, body)
    if status == 200:
        return
    if status != 401 or "flows" not in answer:
        raise CrossSigningError(f"device_signing/upload failed with HTTP {status} ({answer.get('errcode', '?')})")
    flows = [flow.get("stages", []) for flow in answer.get("flows", [])]
    if ["m.login.password"] not in flows:
        raise CrossSigningError("the homeserver wants an authentication flow other than a password "
                                "to publish cross-signing keys; publish them once with a full client")
    if not password:
        raise CrossSigningError("publishing cross-signing keys needs the account password: "
                                "set matrix.password for this start")
    body["auth"] = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user_id},
        "password": password,
        "session": answer.get("session"),
    }
    status, answer = await api("POST", path, body)
    if status != 200:
        raise CrossSigningError(f"device_signing/upload was refused after authentication with HTTP {status} "
                                f"({answer.get('errcode', '?')}); is matrix.password right?")


async def ensure_cross_signing(
    api: ApiCall,
    store: SeedStore,
    user_id: str,
    device_id: str,
    device_ed25519: str,
    sign_with_device: DeviceSigner,
    password: str | None,
) -> CrossSigningStatus:
    """Publish our cross-signing keys if needed and make sure our device is signed by them."""
    seeds = store.load_cross_signing()
    keys = CrossSigningKeys.from_seeds(seeds) if seeds else CrossSigningKeys.generate()
    if not seeds:
        store.save_cross_signing(keys.seeds())

    query = await _query_own(api, user_id)
    published = (
        _published_public(query, "master_keys", user_id),
        _published_public(query, "self_signing_keys", user_id),
        _published_public(query, "user_signing_keys", user_id),
    )
    ours = (keys.master.public, keys.self_signing.public, keys.user_signing.public)
    uploaded_keys = False
    if published != ours:
        if published[0] is not None:
            log.warning("the account's published cross-signing keys are not the ones this bot holds; replacing them")
        await _upload_keys(api, user_id, keys, password)
        uploaded_keys = True
        query = await _query_own(api, user_id)

    device = query.get("device_keys", {}).get(user_id, {}).get(device_id)
    if not isinstance(device, dict):
        raise CrossSigningError("the homeserver does not list this device's keys; they must be uploaded first")
    if device.get("keys", {}).get(f"ed25519:{device_id}") != device_ed25519:
        raise CrossSigningError("the homeserver lists other keys for this device than the ones in the store")

    signatures: JsonDict = {}
    if not verify_signature(device, user_id, keys.self_signing.key_id, keys.self_signing.public):
        signed_device = {k: v for k, v in device.items() if k not in ("signatures", "unsigned")}
        signed_device["signatures"] = {user_id: {keys.self_signing.key_id: keys.self_signing.sign(device)}}
        signatures[device_id] = signed_device
    master = query.get("master_keys", {}).get(user_id, {})
    if not verify_signature(master, user_id, f"ed25519:{device_id}", device_ed25519):
        signed_master = keys.key_object(user_id, keys.master)
        signed_master["signatures"] = {user_id: {f"ed25519:{device_id}": sign_with_device(canonical_json(signed_master))}}
        signatures[keys.master.public] = signed_master

    if signatures:
        status, answer = await api("POST", "/_matrix/client/v3/keys/signatures/upload", {user_id: signatures})
        failures = answer.get("failures") or {}
        if status != 200 or failures:
            codes = sorted({f.get("errcode", "?") for per_user in failures.values() for f in per_user.values()})
            raise CrossSigningError(f"signatures/upload failed with HTTP {status} {codes}")
    return CrossSigningStatus(keys.master.public, keys.self_signing.public, uploaded_keys, bool(signatures))
