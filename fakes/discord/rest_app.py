"""REST routes of the application and its bot user: users, gateway discovery, the application, commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from fakes.discord.commands import Commands
from fakes.discord.errors import ApiError
from fakes.discord.payloads import Payloads
from fakes.discord.rest import Route
from fakes.discord.sharding import Sharding
from fakes.discord.state import State

_COMMANDS = "/applications/{application_id}/commands"
_GUILD_COMMANDS = "/applications/{application_id}/guilds/{guild_id}/commands"


class AppRoutes:
    def __init__(
        self,
        state: State,
        payloads: Payloads,
        commands: Commands,
        gateway_url: Callable[[], str],
        sharding: Sharding,
    ) -> None:
        self._state = state
        self._sharding = sharding
        self._payloads = payloads
        self._commands = commands
        self._gateway_url = gateway_url

    def routes(self) -> list[Route]:
        return [
            ("GET", "/users/@me", self.get_me),
            ("GET", "/users/{user_id}", self.get_user),
            ("GET", "/gateway", self.get_gateway),
            ("GET", "/gateway/bot", self.get_gateway_bot),
            ("GET", "/oauth2/applications/@me", self.get_application),
            ("GET", "/applications/@me", self.get_application),
            *(
                route
                for base in (_COMMANDS, _GUILD_COMMANDS)
                for route in (
                    ("GET", base, self.get_commands),
                    ("PUT", base, self.put_commands),
                    ("POST", base, self.post_command),
                    ("DELETE", base + "/{command_id}", self.delete_command),
                )
            ),
        ]

    async def get_me(self, request: web.Request, body: Any) -> Any:
        return self._payloads.me()

    async def get_user(self, request: web.Request, body: Any, user_id: str) -> Any:
        if int(user_id) not in self._state.users:
            raise ApiError(404, 10013, "Unknown User")
        return self._payloads.user(int(user_id))

    async def get_gateway(self, request: web.Request, body: Any) -> Any:
        return {"url": self._gateway_url()}

    async def get_gateway_bot(self, request: web.Request, body: Any) -> Any:
        return self._sharding.gateway_bot(self._gateway_url())

    async def get_application(self, request: web.Request, body: Any) -> Any:
        return self._payloads.application()

    # ----------------------------------------------------------------------------------- commands

    def _check_app(self, application_id: str) -> None:
        if application_id != str(self._state.application_id):
            raise ApiError(404, 10002, "Unknown Application")

    async def get_commands(
        self, request: web.Request, body: Any, application_id: str, guild_id: str | None = None
    ) -> Any:
        self._check_app(application_id)
        return self._commands.listed(guild_id)

    async def put_commands(
        self, request: web.Request, body: Any, application_id: str, guild_id: str | None = None
    ) -> Any:
        self._check_app(application_id)
        if not isinstance(body, list):
            raise ApiError(400, 50035, "Invalid Form Body")
        return self._commands.replace(body, guild_id)

    async def post_command(
        self, request: web.Request, body: Any, application_id: str, guild_id: str | None = None
    ) -> Any:
        self._check_app(application_id)
        return 201, self._commands.store(body, guild_id)

    async def delete_command(
        self,
        request: web.Request,
        body: Any,
        application_id: str,
        command_id: str,
        guild_id: str | None = None,
    ) -> Any:
        self._check_app(application_id)
        self._commands.delete(command_id, guild_id)
        return None
