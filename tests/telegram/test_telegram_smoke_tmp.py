from conftest import Inbox
from bot.core.model import Outbound, Choice, PromptId, InboundKind

async def test_smoke(bot_api, start_transport):
    inbox = Inbox(lambda i: Outbound(text="hi " + i.text, choices=(Choice("a","A"),Choice("b","B")), prompt_id=PromptId("abc")))
    await start_transport(inbox)
    u = bot_api.user()
    u.say("hello")
    msgs = await bot_api.wait_for_messages(u.id, 1)
    print(msgs[0].text, msgs[0].labels)
    u.press(msgs[0], 1)
    events = await inbox.wait(2)
    print(events)
    await bot_api.wait_for_messages(u.id, 2)
    print([m.text for m in bot_api.sent_to(u.id)])
    print(bot_api.callback_answers)
