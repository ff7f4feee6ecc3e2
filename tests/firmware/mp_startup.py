# The firmware's real start-up path (main.run) without BLE, from the flash
# directory as cwd exactly like the device. Prints the live heap (after
# gc.collect) before and after boot and across a busy session, for the record.
# Under the unix port the firmware is compiled from .py into the same heap, so
# these include bytecode that a .mpy build keeps out of RAM-hungry compiling.
import asyncio
import gc
import os
import struct

import main
from protocol import command, gatt, record
from tests.firmware import fwtest as T


def test_boot_without_ble_from_cwd():
    root = T.flashdir()
    here = os.getcwd()
    os.chdir(root)
    try:
        for boot in (1, 2):
            dev = asyncio.run(main.run("", ble=False, seconds=0.05))
            assert dev.log.epoch == boot and dev.log.head == boot
        assert T.read("display.txt") == b"\n"
        assert T.read("display.pbm")[:3] == b"P4\n"
        assert len(T.logbytes("")) == 2 * record.RECORD_LEN
    finally:
        os.chdir(here)
        T.wipe(root)


def test_session_heap():
    root = T.flashdir()
    try:
        gc.collect()
        base = gc.mem_alloc()
        radio = T.FakeRadio(root)
        peak = [0]

        async def go():
            import config
            import hw
            from device import Device

            cfg = config.load(root)
            dev = Device(cfg, root, radio, hw.make_display(cfg, root))
            disp = asyncio.create_task(dev.display_task())
            gc.collect()
            boot = gc.mem_alloc()
            dev.on_mtu(2, gatt.WANT_MTU)
            await dev.on_control(2, T.frame(dev.nonce, command.OP_TIME, 1, struct.pack(">IH", 1767225607, 0)))
            for i in range(200):
                dev.on_tap(1, gatt.pack_tap(struct.pack(">Q", i)))
                radio.sent = []
                if i % 25 == 0:
                    gc.collect()
                    peak[0] = max(peak[0], gc.mem_alloc())
                    await asyncio.sleep_ms(0)
            await dev.on_control(2, T.frame(dev.nonce, command.OP_READ, 2, struct.pack(">I", 0)))
            n = len(radio.take("log"))
            assert n == (202 + 5) // 6  # BOOT + CLOCK_SET + 200 taps, 6 a frame
            disp.cancel()
            dev.log.close()
            return boot

        boot = asyncio.run(go())
        print(f"heap: before boot {base} B, after boot {boot} B,",
              f"highest live {peak[0]} B (after gc, every 25 taps)")
    finally:
        T.wipe(root)
