"""A fake FreeSWITCH event socket for tests: the simulator's `EslServer` plus a scriptable `api`.

`FakeEsl.replies` maps an api command's name (`uuid_transfer`) to its output; any other command
answers FreeSWITCH's "-ERR <name> Command not found!". Every command received is in `commands`.
"""

from __future__ import annotations

import asyncio

from voiceplat.simulator.peers.esl_server import EslServer, command_not_found

__all__ = ["FakeEsl"]


class FakeEsl(EslServer):
    def __init__(self, password: str = "ClueCon") -> None:
        super().__init__(password, api=self._answer)
        self.replies: dict[str, str] = {}
        self._answered = asyncio.Event()

    def _answer(self, line: str) -> str:
        name = line.split(" ")[0]
        self._answered.set()
        return self.replies[name] if name in self.replies else command_not_found(line)

    def api_lines(self) -> list[str]:
        return [line[4:] for line in self.commands if line.startswith("api ")]

    async def api_line(self, name: str, nth: int = 1) -> str:
        """Waits for the `nth` api command called `name`; returns its line (without `api `)."""
        while True:
            found = [line for line in self.api_lines() if line.split(" ")[0] == name]
            if len(found) >= nth:
                return found[nth - 1]
            self._answered.clear()
            await self._answered.wait()
