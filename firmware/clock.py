# Wall clock. Unset at boot (the ESP32 has no battery-backed RTC we trust);
# set by an authenticated OP_TIME. Both the wall clock and the uptime are kept
# as whole seconds plus an anchor in ticks_ms, re-anchored on every read, so the
# 2**30 ms wrap of ticks never matters as long as someone reads at least every
# few days (the display task reads every window).
#
# stale(): set, but drifting: _STALE_S have passed since the last sync, or the
# last sync had to correct the clock by _JUMP_S or more (this crystal or the
# gateway's clock is off; stale until a sync that corrects less). A stale clock
# still shows codes (the cloud accepts a window either side), but INFO and the
# screen say so.
import time

from micropython import const

_STALE_S = const(86400)  # a day without a sync
_JUMP_S = const(10)  # a correction this large at the last sync


class Clock:
    def __init__(self):
        self._set = False
        self._sec = 0  # unix seconds at anchor
        self._ms = 0  # milliseconds past _sec at anchor
        self._t0 = time.ticks_ms()
        self._up = 0  # uptime seconds at _ut0
        self._ut0 = self._t0
        self._synced = 0  # uptime at the last set(), less _STALE_S after a big correction

    def is_set(self):
        return self._set

    def set(self, unix_s, ms):
        old = self.now()
        self._synced = self.uptime()
        if old is not None and abs(unix_s - old) >= _JUMP_S:
            self._synced -= _STALE_S
        self._sec = unix_s
        self._ms = ms
        self._t0 = time.ticks_ms()
        self._set = True

    def stale(self):
        return self._set and self.uptime() - self._synced >= _STALE_S

    def _advance(self):
        now = time.ticks_ms()
        d = time.ticks_diff(now, self._t0) + self._ms
        if d >= 1000:
            self._sec += d // 1000
        self._ms = d % 1000
        self._t0 = now

    def now(self):
        """Unix seconds, or None while unset."""
        if not self._set:
            return None
        self._advance()
        return self._sec

    def now_ms_part(self):
        """Milliseconds past now(); call right after now()."""
        return self._ms

    def uptime(self):
        """Whole seconds since boot."""
        now = time.ticks_ms()
        d = time.ticks_diff(now, self._ut0)
        if d >= 1000:
            s = d // 1000
            self._up += s
            self._ut0 = time.ticks_add(self._ut0, s * 1000)
        return self._up
