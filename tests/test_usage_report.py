"""/usage's report without Discord: whose usage a request is about, and how its title reads."""

from bot.usage_report import ReportRequest

ME, OTHER, GUILD, CHANNEL = 1, 2, 10, 20


def request(**kwargs: object) -> ReportRequest:
    return ReportRequest(guild_id=GUILD, channel_id=CHANNEL, asker=ME, **kwargs)  # type: ignore[arg-type]


def test_whose_usage_and_the_title() -> None:
    mine = request()
    assert (mine.subject, mine.about_others, mine.in_channel) == (ME, False, None)
    assert mine.title == "Your usage, today (UTC)"

    someone = request(user=OTHER, user_name="Bob", period="7d")
    assert (someone.subject, someone.about_others) == (OTHER, True)
    assert someone.title == "Usage by Bob, the last 7 days"

    channel = request(scope="channel", period="all")
    assert (channel.subject, channel.about_others, channel.in_channel) == (None, True, CHANNEL)
    assert channel.title == "Usage in this channel, all time"
    assert (
        request(scope="channel", user=OTHER, user_name="Bob").title
        == "Usage by Bob in this channel, today (UTC)"
    )
    assert request(scope="server", period="30d").title == "Usage in this server, the last 30 days"
    assert request(user=ME).about_others is False
