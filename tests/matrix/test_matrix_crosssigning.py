"""Another user verifies the bot's cross-signing chain: master -> self-signing -> device."""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from matrix_support import MakeBot, MakePeer


# Deliberately independent of bot.transports.matrix_crosssigning: the check must not share
# the code it checks.
def _b64decode(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def _signed_by(obj: dict[str, Any], user_id: str, key_id: str, public_key: str) -> bool:
    signature = obj.get("signatures", {}).get(user_id, {}).get(key_id)
    if signature is None:
        return False
    unsigned = {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
    canonical = json.dumps(unsigned, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()
    try:
        Ed25519PublicKey.from_public_bytes(_b64decode(public_key)).verify(_b64decode(signature), canonical)
    except InvalidSignature:
        return False
    return True


def _only_key(obj: dict[str, Any]) -> tuple[str, str]:
    [(key_id, public)] = obj["keys"].items()
    assert key_id == f"ed25519:{public}"
    return key_id, public


async def _query(peer: Any, user_id: str) -> dict[str, Any]:
    response = await peer.client.send(
        "POST", "/_matrix/client/v3/keys/query", json.dumps({"device_keys": {user_id: []}}),
        {"Authorization": f"Bearer {peer.client.access_token}", "Content-Type": "application/json"},
    )
    assert response.status == 200
    result: dict[str, Any] = await response.json()
    return result


def _verify_chain(query: dict[str, Any], user_id: str, device_id: str) -> str:
    master = query["master_keys"][user_id]
    self_signing = query["self_signing_keys"][user_id]
    device = query["device_keys"][user_id][device_id]
    assert master["usage"] == ["master"] and self_signing["usage"] == ["self_signing"]
    master_id, master_public = _only_key(master)
    ssk_id, ssk_public = _only_key(self_signing)
    device_public = device["keys"][f"ed25519:{device_id}"]

    assert _signed_by(self_signing, user_id, master_id, master_public), "self-signing key not signed by master"
    assert _signed_by(device, user_id, ssk_id, ssk_public), "device not signed by the self-signing key"
    assert _signed_by(device, user_id, f"ed25519:{device_id}", device_public), "device self-signature invalid"
    # A tampered object must not verify: the check above is not vacuous.
    tampered = {**device, "algorithms": ["m.olm.v1.curve25519-aes-sha2"]}
    assert not _signed_by(tampered, user_id, ssk_id, ssk_public)
    return master_public


async def test_another_user_verifies_the_bots_device(make_bot: MakeBot, make_peer: MakePeer) -> None:
    bot = await make_bot()
    peer = await make_peer()
    device_id = bot.transport.device_id
    assert device_id is not None and bot.transport.cross_signing is not None
    master_public = _verify_chain(await _query(peer, bot.user_id), bot.user_id, device_id)
    assert master_public == bot.transport.cross_signing.master_public

    # What only the owner sees: the master key signed by the device (so the bot's other
    # sessions would trust it) and the user-signing key signed by the master key.
    status, own = await bot.transport._api("POST", "/_matrix/client/v3/keys/query",
                                           {"device_keys": {bot.user_id: []}})
    assert status == 200
    master = own["master_keys"][bot.user_id]
    device_public = own["device_keys"][bot.user_id][device_id]["keys"][f"ed25519:{device_id}"]
    assert _signed_by(master, bot.user_id, f"ed25519:{device_id}", device_public)
    user_signing = own["user_signing_keys"][bot.user_id]
    assert user_signing["usage"] == ["user_signing"]
    assert _signed_by(user_signing, bot.user_id, f"ed25519:{master_public}", master_public)


async def test_restart_keeps_keys_and_reset_bootstraps_again(make_bot: MakeBot, make_peer: MakePeer) -> None:
    bot = await make_bot()
    peer = await make_peer()
    first = bot.transport.cross_signing
    assert first is not None and first.uploaded_keys and first.uploaded_signatures
    await bot.transport.stop()

    again = await make_bot(user=bot.user, store=bot.options.store_path)
    status = again.transport.cross_signing
    assert status is not None
    assert (status.uploaded_keys, status.uploaded_signatures) == (False, False)
    assert status.master_public == first.master_public
    await again.transport.stop()

    # The sealed seeds are lost: the bot makes new keys and replaces the published ones,
    # which Synapse only allows after user-interactive auth with the password.
    (bot.options.store_path / "cross_signing.sealed").unlink()
    reset = await make_bot(user=bot.user, store=bot.options.store_path)
    status = reset.transport.cross_signing
    assert status is not None and status.uploaded_keys and status.master_public != first.master_public
    device_id = reset.transport.device_id
    assert device_id is not None
    assert _verify_chain(await _query(peer, bot.user_id), bot.user_id, device_id) == status.master_public


async def test_cross_signing_seeds_are_sealed_on_disk(make_bot: MakeBot) -> None:
    bot = await make_bot()
    store = bot.options.store_path
    for name in ("login.sealed", "checkpoint.sealed", "cross_signing.sealed"):
        raw = (store / name).read_bytes()
        assert b"master" not in raw and b"access_token" not in raw and bot.user.localpart.encode() not in raw
        assert (store / name).stat().st_mode & 0o077 == 0
    assert store.stat().st_mode & 0o077 == 0
