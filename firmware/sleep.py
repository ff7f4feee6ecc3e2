# Sleep between events, on battery. Imported only by a battery board, once its
# loop runs (main.run), so a mains board and the boot's heap never see it.
#
# The board sleeps whenever the loop has nothing to run before its next timer
# (a redraw, a watchdog feed, a READ step) and no central is connected: start()
# wraps asyncio's idle wait (IOQueue.wait_io_event, given the ms until the next
# task is due). On the ESP32 that wait becomes machine.lightsleep: the timer
# wakes it; waking on a radio event needs the port's BLE modem sleep, which was
# not tried here (there is no ESP32 on this machine). The unix port has no
# lightsleep, so on the host the wait stays a poll on the radio's socket (a radio
# event ends it, as the radio's interrupt wakes the chip) and is only counted.
#
# slept: [ms asleep, ms idle with a central connected, naps, the radio asked,
# asyncio's own wait, lightsleep or None]: the duty cycle that
# benchmarks/firmware_power.py reads; the rest of the time the CPU ran. State in
# one list, no closure: the label has no heap to spare. A later boot in the same
# process swaps the radio, not the hook.
import time

slept = [0, 0, 0, None, None, None]


def start(radio):
    s = slept
    installed = s[3] is not None
    s[3] = radio
    if installed:
        return
    from asyncio import core

    q = core._io_queue
    s[4] = q.wait_io_event
    try:
        from machine import lightsleep  # the unix port has none

        s[5] = lightsleep
    except ImportError:
        pass
    q.wait_io_event = wait


def wait(dt):
    """asyncio's idle wait, dt ms until the next task (-1: none)."""
    s = slept
    t0 = time.ticks_ms()
    if dt > 0 and not s[3]._nconn:  # no central connected
        if s[5] is None:
            s[4](dt)
        else:
            s[5](dt)
            s[4](0)  # what the radio queued meanwhile
        s[0] += time.ticks_diff(time.ticks_ms(), t0)
        s[2] += 1
    else:
        s[4](dt)
        s[1] += time.ticks_diff(time.ticks_ms(), t0)
