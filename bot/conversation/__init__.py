"""The conversation layer: the turn, the router, the dialog engine, the command table and the
:class:`~bot.conversation.feature.Feature` declaration every capability is built from.

It sits above the services and below the capabilities; it never imports a capability: the
wiring hands it the entry dialogs, the commands and the menu.
"""
