"""What the store tests share: ids, a clock they set, usage rows recorded at chosen times and the default
settings."""

from datetime import UTC, datetime

from bot.settings import ChannelSettings
from bot.store.usage import AnswerStart, UsageStore

GUILD, OTHER_GUILD = 100, 200
ALICE, BOB, CAROL = 1, 2, 3
GENERAL, RANDOM = 10, 11
CHANNEL, OTHER_CHANNEL = 1001, 1002
ADMIN, OTHER_ADMIN = 7, 8
NOW = datetime(2025, 6, 15, 12, 0, tzinfo=UTC)
DEFAULTS = ChannelSettings(model="default-model")


class Clock:
    """The stores' clock: it says what ``now`` was set to."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def record(
    usage: UsageStore,
    clock: Clock,
    request_id: str,
    *,
    at: datetime,
    user: int = ALICE,
    channel: int = GENERAL,
    guild: int | None = GUILD,
    prompt: int = 10,
    completion: int = 20,
    estimated: bool = False,
    status: str = "completed",
) -> None:
    """A request started and finished at ``at``; the clock is set back to NOW after."""
    clock.now = at
    await usage.start([AnswerStart(request_id, guild, channel, user, "m1")])
    await usage.finish(
        request_id,
        status=status,
        prompt_tokens=prompt,
        completion_tokens=completion,
        estimated=estimated,
        ttft_ms=120.4,
        duration_ms=900,
    )
    clock.now = NOW
