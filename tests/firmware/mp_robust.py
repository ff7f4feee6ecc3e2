# The watchdog under MicroPython: fed by main's loop, not fed for a dead device
# task, firing on a stalled loop (the real host watchdog thread, not killing),
# and reset causes from the boot state into BOOT records.
import asyncio
import sys
import time

import bootstate
import hw
import main
from protocol import record
from tests.firmware import fwtest as T


class CountingWdt:
    """A watchdog that only counts feeds."""

    def __init__(self):
        self.feeds = 0

    def feed(self):
        self.feeds += 1


def real_wdt(ms, root):
    """The real host watchdog (hw.make_watchdog), stopping after its note instead
    of killing this process."""
    hw.wdt_kill = False
    return hw.make_watchdog(ms, root)


class StallDisplay:
    """Hangs the loop at its first draw, in a busy loop that never yields, until
    the watchdog fires (or, if it never does, gives up after a minute)."""

    caught = None

    def show(self, code, label, status, left=0):
        if self.caught is not None:
            return
        t0 = time.ticks_ms()
        while not hw.wdt_fired and time.ticks_diff(time.ticks_ms(), t0) < 60000:
            pass
        self.caught = hw.wdt_fired


class BrokenDisplay:
    """A panel driver bug: the display task dies at the first draw."""

    def __init__(self, wdt):
        self.wdt = wdt
        self.feeds_at_death = None

    def show(self, code, label, status, left=0):
        self.feeds_at_death = self.wdt.feeds
        raise RuntimeError("panel driver bug")


# --- watchdog ----------------------------------------------------------------
def test_watchdog_fed_by_the_loop():
    root = T.flashdir()
    try:
        w = CountingWdt()
        asyncio.run(main.run(root, ble=False, seconds=0.3, wdt=w, wdt_ms=100))
        assert w.feeds >= 2, w.feeds  # at the start and every 25 ms
        # The real host watchdog, fed by the same loop over more than two timeouts,
        # never fires, and the bounded run leaves no note of a reset.
        real = real_wdt(1000, root)
        asyncio.run(main.run(root, ble=False, seconds=2.5, wdt=real, wdt_ms=1000))
        assert not hw.wdt_fired
        assert bootstate.state(root) == (0, 0, 0)
        assert T.boot_causes(root) == [record.RESET_POWER_ON] * 2
    finally:
        T.wipe(root)


def test_dead_device_task_is_not_fed_for():
    root = T.flashdir()
    try:
        w = CountingWdt()
        d = BrokenDisplay(w)
        asyncio.run(main.run(root, ble=False, seconds=0.3, wdt=w, wdt_ms=100, display=d))
        assert d.feeds_at_death is not None
        assert w.feeds == d.feeds_at_death  # not one feed once the display task died
    finally:
        T.wipe(root)


class OomDevice:
    """A device whose every command finds no heap."""

    safe = False

    def command(self, conn, frame):
        raise MemoryError("memory allocation failed")


def test_commands_failing_for_heap_stop_the_feeding():
    root = T.flashdir()
    try:
        w = CountingWdt()
        oom = OomDevice()

        async def go():
            run = asyncio.create_task(main.run(root, ble=False, seconds=0.6, wdt=w, wdt_ms=100))
            await asyncio.sleep_ms(100)
            main._command(oom, 0, b"")
            main._command(oom, 0, b"")  # two in a row: still fed
            before = w.feeds
            await asyncio.sleep_ms(80)
            during = w.feeds
            main._command(oom, 0, b"")  # the third: the feeder gives up
            at = w.feeds
            await run
            return before, during, at

        before, during, at = asyncio.run(go())
        assert during > before, (before, during)
        assert w.feeds == at, (at, w.feeds)  # not one feed after the third
    finally:
        T.wipe(root)


def test_stalled_loop_is_caught_and_the_next_boot_logs_wdt():
    root = T.flashdir()
    try:
        w = real_wdt(200, root)
        d = StallDisplay()
        asyncio.run(main.run(root, ble=False, seconds=0.05, wdt=w, wdt_ms=200, display=d))
        assert d.caught is True  # the busy loop was ended by the watchdog, not the minute
        assert bootstate.state(root)[2] == record.RESET_WDT
        asyncio.run(main.run(root, ble=False, seconds=0.05, wdt=CountingWdt()))
        assert T.boot_causes(root) == [record.RESET_POWER_ON, record.RESET_WDT]
        assert bootstate.state(root) == (0, 0, 0)  # the note is consumed
    finally:
        T.wipe(root)


# --- reset causes ------------------------------------------------------------
class FakeMachine:
    """machine as hw_esp32 sees it on a chip that last reset for `cause`."""

    PWRON_RESET, HARD_RESET, WDT_RESET, DEEPSLEEP_RESET, SOFT_RESET = 1, 2, 3, 4, 5

    def __init__(self, cause):
        self.cause = cause

    def reset_cause(self):
        return self.cause


def test_chip_reset_causes_map_to_the_protocol():
    assert hw.reset_cause() is None  # the host has no such thing
    real = hw.on_device
    hw.on_device = lambda: True
    try:
        for c, want in ((1, record.RESET_POWER_ON), (2, record.RESET_HARD), (3, record.RESET_WDT),
                        (4, record.RESET_DEEPSLEEP), (5, record.RESET_SOFT), (9, record.RESET_UNKNOWN)):
            sys.modules["machine"] = FakeMachine(c)
            sys.modules.pop("hw_esp32", None)  # binds machine at import
            assert hw.reset_cause() == want, (c, want)
    finally:
        hw.on_device = real
        del sys.modules["machine"]
        sys.modules.pop("hw_esp32", None)


def test_reset_cause_from_boot_state_and_hardware():
    root = T.flashdir()
    try:
        assert bootstate.begin(root) == (record.RESET_POWER_ON, 0)
        # Died before it was stable, nothing noted: a crash, one failed boot.
        assert bootstate.begin(root) == (record.RESET_CRASH, 1)
        bootstate.stable(root)
        # Stopped after it was stable (power off, the sim's SIGTERM): power-on.
        assert bootstate.begin(root) == (record.RESET_POWER_ON, 0)
        bootstate.note(root, record.RESET_WDT)
        assert bootstate.begin(root) == (record.RESET_WDT, 1)
        # On the ESP32 the chip's word beats the inference; a note beats both (main's
        # crash handler notes RESET_CRASH, then machine.reset() reads back as soft).
        assert bootstate.begin(root, record.RESET_HARD) == (record.RESET_HARD, 2)
        bootstate.note(root, record.RESET_CRASH)
        assert bootstate.begin(root, record.RESET_SOFT) == (record.RESET_CRASH, 3)
        assert bootstate.begin(root, record.RESET_UNKNOWN) == (record.RESET_CRASH, 4)
        # A deliberate restart is not a failure.
        bootstate.note(root, record.RESET_SOFT)
        assert bootstate.begin(root) == (record.RESET_SOFT, 0)
        # A torn state file reads as none.
        with open(root + "boot.bin", "wb") as f:
            f.write(b"\x01")
        assert bootstate.begin(root) == (record.RESET_POWER_ON, 0)
        # Through main: the cause lands in the BOOT record.
        bootstate.begin(root)  # and dies
        asyncio.run(main.run(root, ble=False, seconds=0.05, wdt=CountingWdt()))
        asyncio.run(main.run(root, ble=False, seconds=0.05, wdt=CountingWdt()))
        assert T.boot_causes(root) == [record.RESET_CRASH, record.RESET_POWER_ON]
    finally:
        T.wipe(root)
