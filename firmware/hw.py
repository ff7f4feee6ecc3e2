# Hardware selection: the only place that knows host from device. Nothing is
# built at import; callers ask for what they need. What only the ESP32 has is in
# hw_esp32.py, imported when asked for.
import sys


def on_device():
    return sys.platform == "esp32"


def make_display(cfg, root="", board=None):
    """The panel named by the board profile (board.json; the v0 kiosk without
    one). The host draws the profile's size to a PBM instead of a panel;
    config.json's "display" still overrides the driver. The panels' pins and
    buses are the ESP32's: hw_esp32.display."""
    if board is None:
        import board as b

        board = b.load(root)
    kind = cfg.display or (board.driver if on_device() else "host")
    if kind == "host":
        from display_host import HostDisplay

        return HostDisplay(root, board.width, board.height, board.steps)
    from hw_esp32 import display

    return display(kind, cfg, board)


def make_radio(cfg):
    from radio import BleRadio

    return BleRadio(cfg.name)


def reset_cause():
    """Why the chip last reset, as a protocol.record.RESET_* value; None on the
    host, which has no such thing (bootstate.py works it out from flash)."""
    if not on_device():
        return None
    from hw_esp32 import reset_cause

    return reset_cause()


# --- watchdog ----------------------------------------------------------------
# The unix port has no machine.WDT, so on the host this module is the watchdog
# (one per process, like the chip's): make_watchdog returns it, with feed() and
# stop(). A thread wakes every timeout/4; once the watchdog has gone a whole
# timeout unfed it does what the ESP32's does to a stalled loop, however the loop
# is stuck (busy, blocked, deadlocked): a reset. It notes RESET_WDT in boot.bin
# (bootstate.py), so the next boot logs it, then kills the process with SIGALRM:
# no clean-up runs, as on a real reset, and the supervisor sees a death by
# signal 14 and restarts the device. (The unix port has no os._exit, and no
# thread can raise into the main one.) Tests set wdt_kill = False to stop at the
# note; wdt_fired tells. A class would cost heap; a module is one already.
_wdt = None  # [timeout ms (0: stopped), ticks_ms of the last feed, root]
wdt_fired = False
wdt_kill = True


def make_watchdog(ms, root):
    """Something with feed() that resets the device unless fed every ms:
    machine.WDT on the ESP32 (cannot be stopped once started); on the host
    this module, which also has stop()."""
    if on_device():
        from machine import WDT

        return WDT(timeout=ms)
    import _thread
    import os
    import time

    global _wdt, wdt_fired
    _wdt = [ms, time.ticks_ms(), root]
    wdt_fired = False
    # The thread imports nothing: an import searches sys.path, whose "" is the
    # littlefs root, and littlefs (and the block device glue, which keeps its
    # call arguments in the device object) must never be entered by two threads
    # at once. A boot-time import from this thread did just that while the boot
    # used the flash: the virtual board segfaulted or wrote one thread's buffer
    # to flash (files gone, OSError 84).
    _thread.start_new_thread(_watch, (_wdt, os, time))
    return sys.modules[__name__]


def feed():
    import time

    _wdt[1] = time.ticks_ms()


def stop():
    _wdt[0] = 0  # its thread ends at its next wake


def _watch(w, os, time):
    ms = w[0]
    while True:
        # Napping timeout/4: waking every 100 ms was tried and made the radio
        # tests' 64K devices run out of heap now and then.
        time.sleep_ms(ms // 4 or 1)
        if not w[0]:
            return
        if time.ticks_diff(time.ticks_ms(), w[1]) >= ms:
            break
    try:  # may find no heap (a stall may be one): the next boot then infers a crash
        print("watchdog:", ms, "ms")
        import bootstate
        from protocol import record

        bootstate.note(w[2], record.RESET_WDT)
    except Exception:
        pass
    global wdt_fired
    wdt_fired = True
    if wdt_kill:
        # Whole literals: made when hw loads, so the reset itself allocates nothing.
        os.system("kill -14 $PPID")  # SIGALRM; $PPID of the shell: this process
        time.sleep_ms(1000)
        os.system("kill -9 $PPID")  # SIGALRM was ignored by whoever started us


# --- battery -----------------------------------------------------------------
battery_mv = None  # the host's battery reading in mV, for tests or the sim to set


def make_battery(board):
    """Battery sense from the board profile's "battery" entry (adc_pin, divider,
    low_mv): (read_mv, low_mv), read_mv() giving the battery in mV or None when
    unknown; None on mains. On the host read_mv() returns battery_mv."""
    b = board.battery
    if not b:
        return None
    if on_device():
        from hw_esp32 import battery

        return battery(b)
    return _host_mv, int(b["low_mv"])


def _host_mv():
    return battery_mv


class NullRadio:
    """No BLE at all: for running the rest of the firmware where there is no radio."""

    flag = None
    _nconn = 0  # no central is ever connected (sleep.py asks)

    def tap_receipt(self, conn, data):
        pass

    def control_reply(self, conn, data):
        pass

    def log_frame(self, conn, data):
        return None

    def set_info(self, data):
        pass
