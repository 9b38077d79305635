"""The features of civicbot, in one place. Adding a capability: its own package with a
``feature.py``, plus one line here. Order matters only where a feature's service uses the
service of another (list that one first)."""

from __future__ import annotations

from bot.bulletins.feature import BULLETINS
from bot.cases.feature import FEATURES as CASES
from bot.checkins.feature import CHECKINS
from bot.conversation.feature import Feature
from bot.handlers.features import (
    CONVERSATION,
    DELIVERY,
    ERASURE,
    LANGUAGE,
    ONBOARDING,
    PANIC,
    PRIVACY,
    STAFF_ADMIN,
)
from bot.surveys.feature import SURVEYS

FEATURES: tuple[Feature, ...] = (
    ONBOARDING,
    CONVERSATION,
    LANGUAGE,
    PRIVACY,
    ERASURE,
    PANIC,
    STAFF_ADMIN,
    DELIVERY,
    SURVEYS,
    CHECKINS,
    BULLETINS,
    *CASES,
)
