# Entry point: on the ESP32 the board runs main.py at boot; on the host:
#   cd <flashdir> && MICROPYPATH=<repo>/sim/micropython:<repo>/firmware:<repo> \
#     micropython -X heapsize=128K <repo>/firmware/main.py
import sys

# A MICROPYPATH without ".frozen" (as in the command above) hides the frozen
# asyncio of the unix port; the ESP32 has it on the path already.
if ".frozen" not in sys.path:
    sys.path.append(".frozen")

import asyncio  # noqa: E402

import config
import hw
from device import Device


async def _control(dev, conn, frame):
    try:
        await dev.on_control(conn, frame)
    except Exception as e:  # a failed command must not go unreported or stop the loop
        print("control failed:")
        sys.print_exception(e)


async def serve(dev, radio):
    """Drain the radio's event queue. Taps are handled inline (flash write +
    receipt); a command runs as its own task because a READ streams for a while."""
    import radio as r

    while True:
        await radio.flag.wait()
        while True:
            k = radio.peek()
            if not k:
                break
            conn = radio.ev_conn
            try:
                if k == r.EV_TAP:
                    dev.on_tap(conn, radio.ev_data)
                elif k == r.EV_CONTROL:
                    asyncio.create_task(_control(dev, conn, bytes(radio.ev_data)))
                elif k == r.EV_MTU:
                    dev.on_mtu(conn, radio.ev_len)
                elif k == r.EV_CONNECT:
                    dev.on_connect(conn)
                elif k == r.EV_DISCONNECT:
                    dev.on_disconnect(conn)
            except Exception as e:  # one bad event must not stop the device
                print("event", k, "failed:", repr(e))
            radio.release()


async def run(root="", ble=True, seconds=None, radio=None, display=None):
    """Boot and serve. `seconds` bounds the run (tests); None runs forever.
    Returns the Device."""
    cfg = config.load(root)
    if display is None:
        display = hw.make_display(cfg, root)
    if radio is None:
        radio = hw.make_radio(cfg) if ble else hw.NullRadio()
    dev = Device(cfg, root, radio, display, reset_cause=hw.reset_cause())
    tasks = [asyncio.create_task(dev.display_task())]
    if radio.flag is not None:
        tasks.append(asyncio.create_task(serve(dev, radio)))
    if seconds is None:
        await tasks[0]
    await asyncio.sleep_ms(int(seconds * 1000))
    for t in tasks:
        t.cancel()
    dev.log.close()
    return dev


def main():
    try:
        asyncio.run(run())
    except Exception as e:
        if not hw.on_device():
            raise
        # Unattended: a reboot (new epoch, new nonce) beats sitting at the REPL.
        sys.print_exception(e)
        import time

        import machine

        time.sleep(5)
        machine.reset()


if __name__ == "__main__":
    main()
