# Entry point: on the ESP32 the board runs main.py at boot; on the host:
#   cd <flashdir> && MICROPYPATH=<repo>/sim/micropython:<repo>/firmware:<repo> \
#     micropython -X heapsize=128K <repo>/firmware/main.py
import sys

# A MICROPYPATH without ".frozen" (as in the command above) hides the frozen
# asyncio of the unix port; the ESP32 has it on the path already.
if ".frozen" not in sys.path:
    sys.path.append(".frozen")

import asyncio  # noqa: E402
import gc

from micropython import const

import config
import hw
from device import Device
from display import Display
from protocol import command, record

# The watchdog resets the device unless the loop feeds it this often (an e-paper
# refresh or a flash compaction is well inside it).
_WDT_MS = const(30000)
# A boot that has fed the watchdog this long is stable: whatever ends it, it did
# not fail (bootstate.py: failed boots in a row lead to safe mode).
_STABLE_MS = const(30000)
_RESTART_WAIT_MS = const(500)  # let the reply's notification leave before a restart
_SAFE_AFTER = const(3)  # failed boots in a row (bootstate.py) before safe mode
# Host exit statuses (the ESP32 resets instead); the host watchdog's reset is a
# death by SIGALRM (hw.py). Whichever, the supervisor restarts the device.
_EXIT_CRASH = const(1)  # an unhandled error
_EXIT_RESET = const(75)  # a deliberate restart
# Commands that failed for want of heap, in a row. A heap too fragmented for a
# command's few hundred bytes seldom heals: at _OOM_STALL the feeding stops and
# the watchdog resets the device (logged as RESET_WDT; the log is on flash).
_OOM_STALL = const(3)
# Collect after this many bytes allocated, not only when the heap is full: the
# peak between collects stays near the live heap plus this (docs/firmware.md),
# so a burst finds room without a collection first.
_GC_EVERY = const(1024)
_SLEEP_FREE = const(12288)  # free heap after boot below which a battery board stays awake
_oom = [0]


def _no_heap():
    _oom[0] += 1
    print("control failed: out of memory", _oom[0])
    gc.collect()


def _replied(dev, r):
    """A command got its reply r; True if the firmware must now restart: safe
    mode took a new config, to be tried in normal mode."""
    _oom[0] = 0
    return dev.safe and r[0] == command.OP_CONFIG and r[1] == command.OK


async def _restart(dev):
    # Logged as RESET_SOFT, not counted as a failed boot.
    await asyncio.sleep_ms(_RESTART_WAIT_MS)  # the reply's notification leaves
    dev.log.close()
    try:
        _bootstate().note(dev.root, record.RESET_SOFT)
    except Exception:  # flash or heap short: the next boot logs a crash instead
        pass
    if hw.on_device():
        import machine

        machine.reset()
    sys.exit(_EXIT_RESET)


def _command(dev, conn, frame):
    """serve's CONTROL write, handled at once while the radio's ring slot holds
    the frame: no copy, no task, no coroutine frame to find heap for (at 64K a
    fragmented heap had no room for one). A READ is only taken: serve streams
    it (_read_step)."""
    try:
        r = dev.command(conn, frame)
        if r is not None and _replied(dev, r):
            asyncio.create_task(_restart(dev))
    except MemoryError:
        _no_heap()
    except Exception as e:  # a failed command must not go unreported or stop the loop
        print("control failed:")
        sys.print_exception(e)


def _read_step(dev):
    """The next step of the READ under way (dev.read_step: a LOG frame, or the
    reply): ms to wait before the one after, or None when no READ goes on."""
    try:
        w = dev.read_step()
    except MemoryError:
        dev.read_abort()  # no reply: the gateway's READ times out, as a failed command
        _no_heap()
        return None
    except Exception as e:
        dev.read_abort()
        print("control failed:")
        sys.print_exception(e)
        return None
    if isinstance(w, int):
        return w
    if w is not None:
        _replied(dev, w)
    return None


async def serve(dev, radio):
    """Drain the radio's event queue: taps and commands are handled inline
    (flash write, then receipt or reply). While a READ goes on, a LOG frame
    between drains, so a READ needs no task or coroutine of its own and taps
    are served between its frames."""
    import radio as r

    while True:
        w = _read_step(dev)
        if w is None:
            await radio.flag.wait()
        else:
            await asyncio.sleep_ms(w)
        while True:
            k = radio.peek()
            if not k:
                break
            conn = radio.ev_conn
            try:
                if k == r.EV_TAP:
                    dev.on_tap(conn, radio.ev_data)
                elif k == r.EV_CONTROL:
                    _command(dev, conn, radio.ev_data)
                elif k == r.EV_MTU:
                    dev.on_mtu(conn, radio.ev_len)
                elif k == r.EV_CONNECT:
                    dev.on_connect(conn)
                elif k == r.EV_DISCONNECT:
                    dev.on_disconnect(conn)
            except Exception as e:  # one bad event must not stop the device
                print("event", k, "failed:", repr(e))
            radio.release()


def _bootstate():
    """bootstate.py, loaded for a call and dropped: it is needed a few times per
    boot, and its code need not stay in the heap."""
    import bootstate

    del sys.modules["bootstate"]
    return bootstate


def boot(root="", ble=True, radio=None, display=None, battery=None):
    """Everything up to a Device: the boot state (reset cause, safe mode), the
    config, the panel, the battery sense, the radio. Returns (dev, radio).
    Safe mode (_SAFE_AFTER failed boots in a row) skips what most likely crashed
    them: the panel driver (and so the battery marks) and the config overlay;
    BLE stays up so a gateway can still read, ack, set the clock and send a
    config, after which it restarts (_command)."""
    cause, fails = _bootstate().begin(root, hw.reset_cause())
    safe = fails >= _SAFE_AFTER
    if safe:
        print("safe mode", fails)  # failed boots in a row
    cfg = config.load(root, not safe)
    if safe:
        display = Display()  # draws nothing
        battery = None
    else:
        import board

        brd = board.load(root)
        del sys.modules["board"]  # read once at boot: its code need not stay in the heap
        if display is None:
            display = hw.make_display(cfg, root, brd)
        if battery is None:
            battery = hw.make_battery(brd)
    if radio is None:
        radio = hw.make_radio(cfg) if ble else hw.NullRadio()
    dev = Device(cfg, root, radio, display, reset_cause=cause, safe=safe, battery=battery)
    return dev, radio


async def _feed(wdt, tasks, ms, root):
    """Feed the watchdog while the loop runs and the device's tasks live: a task
    that never yields, or one that died, stops the feeding, and the watchdog
    resets the device. After _STABLE_MS of that the boot is stable."""
    n = _STABLE_MS // ms  # feeds until stable
    while True:
        for t in tasks:
            if t.done():
                print("watchdog:", "task ended")  # no more feeding
                return
        if _oom[0] >= _OOM_STALL:
            print("watchdog:", "heap exhausted")
            return
        wdt.feed()
        if n > 0:
            n -= 1
        elif n == 0:
            try:
                _bootstate().stable(root)
                n = -1
            except Exception:  # flash or heap short: again at the next feed, and feed on
                pass
        await asyncio.sleep_ms(ms)


async def run(root="", ble=True, seconds=None, radio=None, display=None, battery=None,
              wdt=None, wdt_ms=_WDT_MS):
    """Boot and serve. `seconds` bounds the run (tests); None runs forever.
    The watchdog (hw.make_watchdog(wdt_ms) unless given) is armed before the
    boot and fed every wdt_ms / 4. Returns the Device."""
    # Garbage from the imports, collected now, leaves its holes low in the heap for
    # the boot's small objects, and the top free for the panel's frame buffer (4.7
    # KB on the label: at 64K it found no room without this).
    gc.collect()
    _oom[0] = 0
    if wdt is None:
        wdt = hw.make_watchdog(wdt_ms, root)
    try:
        dev, radio = boot(root, ble, radio, display, battery)
        # The boot line a technician's tools wait for (tools/bootlog.REPORT): who
        # this is and its code now ("-" until a gateway sets the clock).
        print("device", dev.cfg.device_id.hex(), "code", dev.code() or "-")
        gc.threshold(_GC_EVERY)
        tasks = [asyncio.create_task(dev.display_task())]
        if radio.flag is not None:
            tasks.append(asyncio.create_task(serve(dev, radio)))
        feeder = asyncio.create_task(_feed(wdt, tasks, wdt_ms // 4, root))
        if dev._battery is not None:  # sleep between events on battery (sleep.py)
            await asyncio.sleep_ms(0)  # the radio's first allocations come first
            gc.collect()
            if gc.mem_free() < _SLEEP_FREE:
                # The host at 64 KiB (its Python radio stand-in takes 8 KB the chip
                # does not): the panel's redraws need the room more than sleep does.
                print("sleep: no heap, staying awake")
            else:
                import sleep

                sleep.start(radio)
        if seconds is None:
            await tasks[0]  # returns only by raising
        await asyncio.sleep_ms(int(seconds * 1000))
        tasks.append(feeder)
        for t in tasks:
            t.cancel()
        for t in tasks:  # let each end, so none outlives the run holding the device
            try:
                await t
            except (asyncio.CancelledError, Exception):
                pass
        dev.log.close()
        _bootstate().stable(root)  # a bounded run that ends is not a failed boot
        return dev
    finally:
        stop = getattr(wdt, "stop", None)  # the host's stand-in; a real one runs on
        if stop is not None:
            stop()


def main():
    try:
        asyncio.run(run())
    except Exception as e:
        sys.print_exception(e)
        # The next boot logs RESET_CRASH; failed boots in a row lead to safe mode.
        try:
            _bootstate().note("", record.RESET_CRASH)
        except Exception as e2:  # a failing flash must not keep the device down
            print("boot.bin", repr(e2))
        if not hw.on_device():
            sys.exit(_EXIT_CRASH)  # the host's supervisor restarts it
        # Unattended: a reboot (new epoch, new nonce) beats sitting at the REPL.
        import time

        import machine

        time.sleep(5)
        machine.reset()


if __name__ == "__main__":
    main()
