# Hardware selection: the only place that knows host from device. Nothing is
# built at import; callers ask for what they need.
import sys

from config import ConfigError


def on_device():
    return sys.platform == "esp32"


def make_display(cfg, root=""):
    kind = cfg.display or ("ssd1306" if on_device() else "host")
    if kind == "host":
        from display_host import HostDisplay

        return HostDisplay(root)
    if kind == "ssd1306":
        from machine import I2C, Pin

        from display_ssd1306 import Ssd1306Display

        pins = cfg.i2c or {}
        i2c = I2C(pins.get("id", 0), scl=Pin(pins.get("scl", 22)), sda=Pin(pins.get("sda", 21)),
                  freq=400000)
        return Ssd1306Display(i2c, pins.get("addr", 0x3C))
    raise ConfigError("unknown display " + str(kind))


def make_radio(cfg):
    from radio import BleRadio

    return BleRadio(cfg.name)


def reset_cause():
    try:
        import machine

        return machine.reset_cause()
    except (ImportError, AttributeError):
        return 0


class NullRadio:
    """No BLE at all: for running the rest of the firmware where there is no radio."""

    flag = None

    def tap_receipt(self, conn, data):
        pass

    def control_reply(self, conn, data):
        pass

    def log_frame(self, conn, data):
        return None

    def set_info(self, data):
        pass
