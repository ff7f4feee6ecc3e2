# A crash exits main nonzero and notes RESET_CRASH; SAFE_AFTER failed boots in a
# row bring up safe mode (BLE and gateway commands, no panel, no config overlay),
# from which an accepted config restarts into normal mode. Under MicroPython,
# through main.main and main.boot from a flash directory as the cwd.
import asyncio
import json
import os
import struct

import bootstate
import config
import main
from display import ST_CLOCK_UNSET
from protocol import command, devconfig, gatt, keys, record
from protocol.hmac256 import HmacKey
from tests.firmware import fwtest as T

T0 = 1767225600 + 7  # 2026-01-01 00:00:07
SAFE_AFTER = 3  # main.py's _SAFE_AFTER
CKEY = HmacKey(keys.config_key(T.KEY))
LABEL = T.CFG["label"]


class Boom:
    def show(self, code, label, status, left=0):
        raise AssertionError("safe mode drew on the panel")


def _ctl(dev, fr, conn=2):
    return command.unpack_reply(asyncio.run(dev.on_control(conn, fr)))


def _serve(dev, fr, conn=2):
    """A CONTROL write down main's path (serve -> _command), then the loop runs
    on past the restart delay: a restart raises SystemExit out of asyncio.run."""
    async def go():
        main._command(dev, conn, fr)
        await asyncio.sleep_ms(700)

    asyncio.run(go())


def _time(dev, ctr, t):
    return _ctl(dev, T.frame(dev.nonce, command.OP_TIME, ctr, struct.pack(">IH", t, 0)))


def _blob(version, label):
    return devconfig.seal(CKEY, T.DEVICE_ID, devconfig.Settings(version, "7311", 2, 5, 3, 120, label, -4))


def _status(radio):
    return gatt.unpack_info(radio.info)[6]


# --- crashes and safe mode ---------------------------------------------------
def test_crash_exits_nonzero_and_three_failed_boots_mean_safe_mode():
    root = T.flashdir()
    here = os.getcwd()
    try:
        # A config naming a panel driver the firmware lacks: every boot dies making it.
        cfg = dict(T.CFG)
        cfg["display"] = "bogus"
        with open(root + "config.json", "w") as f:
            json.dump(cfg, f)
        config.save_overlay(root, _blob(2, "Overlay v2"))
        os.chdir(root)
        for i in range(SAFE_AFTER):
            try:
                main.main()
                raise AssertionError("main returned")
            except SystemExit as e:
                assert e.args[0] == 1  # nonzero: the host's supervisor restarts it
            assert bootstate.state("") == (1, i, record.RESET_CRASH)
        assert T.logsegs("") == []  # no boot got as far as the log

        # The fourth boot is in safe mode: no panel (Boom would raise), no overlay
        # applied but its version kept, INFO says safe mode, the BOOT record says crash.
        radio = T.FakeRadio("")
        dev, _ = main.boot("", radio=radio, display=Boom())
        assert dev.safe and bootstate.state("") == (1, SAFE_AFTER, 0)
        assert dev.cfg.label == LABEL and dev.cfg.version == 2
        assert _status(radio) == gatt.STATUS_SAFE_MODE
        assert T.boot_causes("") == [record.RESET_CRASH]
        dev.refresh()
        assert "display.pbm" not in os.listdir()

        # A gateway can still set the clock, read and ack the log, and send a config.
        assert _time(dev, 1, T0)[1] == command.OK
        assert _status(radio) == gatt.STATUS_SAFE_MODE | gatt.STATUS_CLOCK_SET
        dev.on_mtu(2, gatt.WANT_MTU)
        assert _ctl(dev, T.frame(dev.nonce, command.OP_READ, 2, struct.pack(">I", 0))) == \
            (command.OP_READ, command.OK, 2, 2)
        assert len(radio.take("log")) == 1  # BOOT and CLOCK_SET in one frame
        assert _ctl(dev, T.frame(dev.nonce, command.OP_ACK, 3, struct.pack(">I", 2)))[1] == command.OK
        stale = T.frame(dev.nonce, command.OP_CONFIG, 4, _blob(2, "Replayed"))
        assert _ctl(dev, stale)[1] == command.STALE_VERSION
        # main's CONTROL path: a refused config or another command leaves it running;
        # an accepted config restarts the firmware to try it in normal mode.
        _serve(dev, T.frame(dev.nonce, command.OP_CONFIG, 5, _blob(1, "Old")))
        _serve(dev, T.frame(dev.nonce, command.OP_TIME, 6, struct.pack(">IH", T0 + 5, 0)))
        replies = radio.take("ctrl")[-2:]
        assert replies[0] == command.pack_reply(command.OP_CONFIG, command.STALE_VERSION, 5, 2)
        op, st, ctr, off = command.unpack_reply(replies[1])
        # TIME's value: the old clock minus the time set, ms (i32): 5 s behind.
        assert (op, st, ctr) == (command.OP_TIME, command.OK, 6) and -5000 <= off - (1 << 32) <= -4001
        fr = T.frame(dev.nonce, command.OP_CONFIG, 7, _blob(3, "Overlay v3"))
        try:
            _serve(dev, fr)
            raise AssertionError("no restart")
        except SystemExit as e:
            assert e.args[0] == 75  # main's restart on the host
        assert bootstate.state("") == (0, 0, record.RESET_SOFT)

        # Back in normal mode with the new config.
        radio = T.FakeRadio("")
        disp = T.RecDisplay()
        dev, _ = main.boot("", radio=radio, display=disp)
        assert not dev.safe and _status(radio) == 0 and bootstate.state("") == (1, 0, 0)
        assert dev.cfg.label == "Overlay v3" and dev.cfg.version == 3
        dev.refresh()
        assert disp.shows == [(None, "Overlay v3", ST_CLOCK_UNSET)]
        assert T.boot_causes("") == [record.RESET_CRASH, record.RESET_SOFT]
        dev.log.close()
    finally:
        os.chdir(here)
        T.wipe(root)


def test_safe_mode_ends_once_a_boot_is_stable():
    root = T.flashdir()
    try:
        for i in range(SAFE_AFTER):
            assert bootstate.begin(root)[1] == i  # each dies before it is stable
        assert bootstate.begin(root)[1] == SAFE_AFTER  # safe mode
        assert bootstate.begin(root)[1] > SAFE_AFTER  # the safe boot died too: still safe
        bootstate.stable(root)
        assert bootstate.begin(root)[1] == 0
    finally:
        T.wipe(root)
