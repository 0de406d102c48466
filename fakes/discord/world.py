"""Setting up the world tests play in: guilds, roles, members, text channels, threads, DMs, overwrites.

A change a connected bot would hear about (a new thread, a channel's overwrites) is dispatched too.
"""

from __future__ import annotations

from fakes.discord import payloads
from fakes.discord.changes import Changes
from fakes.discord.model import (
    BOT_PERMISSIONS,
    CHANNEL_DM,
    CHANNEL_PUBLIC_THREAD,
    CHANNEL_TEXT,
    EVERYONE_PERMISSIONS,
    GUILD_MEMBERS_INTENT,
    MANAGE_GUILD,
    MANAGE_MESSAGES,
    Channel,
    Guild,
    User,
)


class World(Changes):
    def add_guild(self, name: str = "Test Guild", *, shard: tuple[int, int] | None = None) -> int:
        """A guild; with ``shard`` ([shard_id, shard_count]), one whose events reach that shard."""
        state = self.state
        gid = state.snowflake(shard=shard)
        guild = Guild(gid, name, joined_at=payloads.now_iso())
        guild.roles[gid] = payloads.role(gid, "@everyone", EVERYONE_PERMISSIONS, 0)
        bot_role = state.snowflake()
        guild.roles[bot_role] = payloads.role(bot_role, "Streamcord", BOT_PERMISSIONS, 1, managed=True)
        guild.members[state.bot_user_id] = [bot_role]
        state.guilds[gid] = guild
        return gid

    def add_channel(self, guild_id: int, name: str = "general") -> int:
        guild = self.state.guilds[guild_id]
        cid = self.state.snowflake()
        self.state.channels[cid] = Channel(cid, guild_id, name, len(guild.channels))
        guild.channels.append(cid)
        return cid

    def add_thread(
        self, guild_id: int, parent_id: int, name: str = "a thread", *, owner_id: int | None = None
    ) -> int:
        """A public thread in text channel `parent_id`, started by `owner_id` (default: the bot).

        It is sent in GUILD_CREATE's `threads`, or as THREAD_CREATE to a bot already connected; its
        permissions are its parent's (threads have no overwrites of their own)."""
        state = self.state
        guild = state.guilds[guild_id]
        parent = state.channels.get(parent_id)
        if parent is None or parent.guild_id != guild_id or parent.type != CHANNEL_TEXT:
            raise ValueError(f"{parent_id} is not a text channel of guild {guild_id}")
        owner = state.bot_user_id if owner_id is None else owner_id
        if owner not in guild.members:
            raise ValueError(f"thread owner {owner} is not a member of guild {guild_id}")
        return self.open_thread(guild, parent_id, name, owner, state.snowflake()).id

    def open_thread(self, guild: Guild, parent_id: int, name: str, owner: int, thread_id: int) -> Channel:
        """A new public thread, announced to connected bots."""
        thread = Channel(
            thread_id, guild.id, name, 0, type=CHANNEL_PUBLIC_THREAD, parent_id=parent_id, owner_id=owner
        )
        self.state.channels[thread_id] = thread
        guild.threads.append(thread_id)
        self.gateway.dispatch("THREAD_CREATE", self.payloads.channel(thread) | {"newly_created": True})
        self.changed()
        return thread

    def archive_thread(self, thread_id: int) -> None:
        """Archive a thread (as a moderator or inactivity would): posts and edits in it are refused."""
        thread = self.state.channel(thread_id)
        if thread.type != CHANNEL_PUBLIC_THREAD:
            raise ValueError(f"{thread_id} is not a thread")
        thread.archived = True
        self.gateway.dispatch("THREAD_UPDATE", self.payloads.channel(thread))
        self.changed()

    def add_dm_channel(self, user_id: int) -> int:
        """The DM channel between the bot and `user_id` (created once, like Discord's)."""
        state = self.state
        if user_id not in state.users or user_id == state.bot_user_id:
            raise ValueError(f"no user {user_id} to open a DM with")
        for channel in state.channels.values():
            if channel.type == CHANNEL_DM and channel.recipient_id == user_id:
                return channel.id
        cid = state.snowflake()
        state.channels[cid] = Channel(cid, None, "", 0, type=CHANNEL_DM, recipient_id=user_id)
        return cid

    def add_user(
        self, guild_id: int, name: str, *, manage_messages: bool = False, manage_guild: bool = False
    ) -> int:
        guild = self.state.guilds[guild_id]
        uid = self.state.snowflake()
        self.state.users[uid] = User(uid, name)
        roles = []
        for wanted, perm, role_name in (
            (manage_messages, MANAGE_MESSAGES, "Moderator"),
            (manage_guild, MANAGE_GUILD, "Manager"),
        ):
            if wanted:
                roles.append(self._guild_role(guild, role_name, perm))
        guild.members[uid] = roles
        return uid

    def add_role(self, guild_id: int, name: str, members: list[int]) -> int:
        """A role with no extra permissions, given to `members` (bots with the members intent hear of it)."""
        guild = self.state.guilds[guild_id]
        known = set(guild.roles)
        rid = self._guild_role(guild, name, 0)
        if rid not in known:
            self.gateway.dispatch("GUILD_ROLE_CREATE", {"guild_id": str(guild_id), "role": guild.roles[rid]})
        for user_id in members:
            guild.members[user_id].append(rid)
            member = self.payloads.member(guild, user_id) | {"guild_id": str(guild_id)}
            self.gateway.dispatch("GUILD_MEMBER_UPDATE", member, intent=GUILD_MEMBERS_INTENT)
        self.changed()
        return rid

    def _guild_role(self, guild: Guild, name: str, permissions: int) -> int:
        for rid, role in guild.roles.items():
            if role["name"] == name:
                return rid
        rid = self.state.snowflake()
        guild.roles[rid] = payloads.role(rid, name, EVERYONE_PERMISSIONS | permissions, len(guild.roles))
        return rid

    def set_permission_overwrite(
        self, channel_id: int, target_id: int, *, allow: int = 0, deny: int = 0
    ) -> None:
        """Allow/deny bits for a role (or @everyone: the guild id) or a member in a text channel.

        Threads cannot have overwrites (they use their parent's). A connected bot gets CHANNEL_UPDATE."""
        channel = self.state.channel(channel_id)
        if channel.type != CHANNEL_TEXT or channel.guild_id is None:
            raise ValueError(f"{channel_id} is not a text channel (threads use their parent's overwrites)")
        guild = self.state.guilds[channel.guild_id]
        if target_id in guild.roles:
            kind = 0
        elif target_id in guild.members:
            kind = 1
        else:
            raise ValueError(f"{target_id} is neither a role nor a member of guild {guild.id}")
        if allow or deny:
            channel.overwrites[target_id] = (kind, allow, deny)
        else:
            channel.overwrites.pop(target_id, None)
        self.gateway.dispatch("CHANNEL_UPDATE", self.payloads.channel(channel))
        self.changed()
