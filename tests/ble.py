"""Running a test's coroutine on the virtual radio."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from gateway.ble.factory import ble_session


def run(coro: Coroutine[Any, Any, Any]) -> None:
    """Run coro to the end inside one bumble session (bumble objects belong to one loop)."""

    async def main() -> None:
        async with ble_session():
            await coro

    asyncio.run(main())
