"""Encrypted direct chats between the bot and a second, independent client."""

from __future__ import annotations

from matrix_peer import eventually
from matrix_support import MakeBot, MakePeer

from bot.core.model import Address, Choice, Direction, InboundKind, Outbound, SendOptions
from bot.transports.matrix_render import RLM

ENCRYPTED_FILE = {
    "url": "mxc://localhost/abcdef", "v": "v2", "iv": "w+sE15fzSc0AAAAAAAAAAA",
    "hashes": {"sha256": "fdSLu/YkRx3Wyh3KQabP3rd6+SFiKg5v8ZhIr2nNOkA"},
    "key": {"kty": "oct", "alg": "A256CTR", "ext": True, "key_ops": ["encrypt", "decrypt"],
            "k": "aWF6-32KGYaC3A_FEUCk1Bt0JA37zP0mA5Y_y5jU0Qk"},
}


async def test_encrypted_dm_round_trip(make_bot: MakeBot, make_peer: MakePeer) -> None:
    bot = await make_bot()
    peer = await make_peer()
    room_id = await peer.create_dm(bot.user_id)
    await peer.wait_joined(room_id, bot.user_id)

    await peer.send_text(room_id, "hello bot", to=bot.user_id)
    [reply] = await peer.wait_from_bot(room_id, bot.user_id, 1)

    assert reply.decrypted, "the bot's reply must arrive end-to-end encrypted"
    assert reply.msgtype == "m.text"
    assert reply.body == "echo: hello bot\n\n1. Yes\n2. No"
    assert reply.formatted_body == "<p>echo: hello bot</p><ol><li>Yes</li><li>No</li></ol>"
    [inbound] = bot.core.inbound
    assert inbound.kind is InboundKind.TEXT
    assert inbound.text == "hello bot"
    assert inbound.user_id == peer.user_id
    assert inbound.address == Address("matrix", room_id)
    assert inbound.event_id

    # The answer "2" is passed through untouched: the core resolves it against its prompt.
    await peer.send_text(room_id, "2", to=bot.user_id)
    await peer.wait_from_bot(room_id, bot.user_id, 2)
    assert [i.text for i in bot.core.inbound] == ["hello bot", "2"]


async def test_rtl_rendering_and_unsupported_content(make_bot: MakeBot, make_peer: MakePeer) -> None:
    bot = await make_bot()
    peer = await make_peer()
    room_id = await peer.chat_with(bot.user_id, "مرحبا")

    await bot.transport.send(Address("matrix", room_id), Outbound(
        text="اختر لغتك", choices=(Choice("ar", "العربية"), Choice("en", "English")), direction=Direction.RTL,
    ))
    replies = await peer.wait_from_bot(room_id, bot.user_id, 2)
    rtl = replies[1]
    assert rtl.formatted_body is not None and rtl.formatted_body.startswith('<div dir="rtl">')
    assert rtl.body.split("\n") == [f"{RLM}اختر لغتك", "", f"{RLM}1. العربية", f"{RLM}2. English"]

    # A photo is not text: the core hears that something unsupported arrived.
    await peer.send_content(room_id, {"msgtype": "m.image", "body": "photo.jpg", "file": ENCRYPTED_FILE},
                            to=bot.user_id)
    await eventually(lambda: len(bot.core.inbound) == 2, what="the image to reach the core")
    assert bot.core.inbound[1].kind is InboundKind.UNSUPPORTED
    assert bot.core.inbound[1].text == ""


async def test_transaction_id_makes_resend_idempotent(make_bot: MakeBot, make_peer: MakePeer) -> None:
    bot = await make_bot()
    peer = await make_peer()
    room_id = await peer.chat_with(bot.user_id, "hi")

    address = Address("matrix", room_id)
    first = await bot.transport.send(address, Outbound(text="bulletin 1"), SendOptions(transaction_id="outbox-17"))
    again = await bot.transport.send(address, Outbound(text="bulletin 1"), SendOptions(transaction_id="outbox-17"))
    await bot.transport.send(address, Outbound(text="marker"))
    await peer.wait_from_bot(room_id, bot.user_id, 3)

    assert first.message_id == again.message_id
    assert [m.body for m in peer.from_bot(room_id, bot.user_id)] == ["echo: hi\n\n1. Yes\n2. No", "bulletin 1", "marker"]


async def test_own_messages_and_notices_are_not_answered(make_bot: MakeBot, make_peer: MakePeer) -> None:
    bot = await make_bot()
    peer = await make_peer()
    room_id = await peer.create_dm(bot.user_id)
    await peer.wait_joined(room_id, bot.user_id)
    await peer.send_content(room_id, {"msgtype": "m.notice", "body": "I am another bot"}, to=bot.user_id)
    await peer.send_text(room_id, "a person", to=bot.user_id)
    await peer.wait_from_bot(room_id, bot.user_id, 1)
    await bot.transport.send(Address("matrix", room_id), Outbound(text="unprompted"))
    await peer.wait_from_bot(room_id, bot.user_id, 2)
    # The bot's own two messages came back through its sync; neither reached the core.
    await peer.send_text(room_id, "marker", to=bot.user_id)
    await peer.wait_from_bot(room_id, bot.user_id, 3)
    assert [i.text for i in bot.core.inbound] == ["a person", "marker"]


async def test_invites_outside_the_allow_list_are_declined(make_bot: MakeBot, make_peer: MakePeer) -> None:
    bot = await make_bot(allowed_homeservers=("partner.example",))
    peer = await make_peer()
    room_id = await peer.create_dm(bot.user_id)
    await peer.wait_left(room_id, bot.user_id)
    assert room_id not in bot.transport.client.rooms


async def test_images_are_uploaded_encrypted(make_bot: MakeBot, make_peer: MakePeer) -> None:
    """A results chart: the homeserver stores only ciphertext; the peer decrypts the very PNG sent."""
    import io

    from nio import MemoryDownloadResponse
    from nio.crypto.attachments import decrypt_attachment
    from PIL import Image

    bot = await make_bot()
    peer = await make_peer()
    room_id = await peer.chat_with(bot.user_id, "hello")

    buffer = io.BytesIO()
    Image.new("RGB", (40, 20), (59, 110, 165)).save(buffer, format="PNG")
    png = buffer.getvalue()
    await bot.transport.send(Address("matrix", room_id),
                             Outbound(text="Chart: results", image=png, image_name="results.png"))
    caption = (await peer.wait_from_bot(room_id, bot.user_id, 2))[1]
    assert caption.body == "Chart: results" and caption.decrypted
    _, content, decrypted = await eventually(lambda: peer.images and peer.images[0], what="the image")
    assert decrypted and content["msgtype"] == "m.image" and "url" not in content
    assert content["info"] == {"mimetype": "image/png", "size": len(png), "w": 40, "h": 20}
    encrypted_file = content["file"]
    download = await peer.client.download(mxc=encrypted_file["url"])
    assert isinstance(download, MemoryDownloadResponse)
    assert download.body != png  # the homeserver holds ciphertext only
    plain = decrypt_attachment(download.body, encrypted_file["key"]["k"], encrypted_file["hashes"]["sha256"],
                               encrypted_file["iv"])
    assert plain == png
