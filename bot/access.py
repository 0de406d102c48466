"""Who may ask here and how many tokens a day they get: allowed/blocked roles and users, role quotas."""

from __future__ import annotations

from collections.abc import Collection

from bot.settings import ChannelSettings

NOT_ALLOWED = "You don't have access to the bot in this channel."


def may_ask(settings: ChannelSettings, user_id: int, role_ids: Collection[int]) -> bool:
    """Blocks win over allows; with any allow list set, only the people it names (by user or role) may ask."""
    roles = set(role_ids)
    if user_id in settings.blocked_users or roles & set(settings.blocked_roles):
        return False
    if not settings.allowed_users and not settings.allowed_roles:
        return True
    return user_id in settings.allowed_users or bool(roles & set(settings.allowed_roles))


def daily_quota(settings: ChannelSettings, role_ids: Collection[int]) -> int | None:
    """Tokens a day for this member: the most generous of their roles' quotas (None = unlimited), or
    daily_token_quota when none of their roles has one."""
    quotas = [quota for role, quota in settings.role_quotas if role in role_ids]
    if not quotas:
        return settings.daily_token_quota
    if None in quotas:
        return None
    return max(q for q in quotas if q is not None)
