# Hardware selection: the only place that knows host from device. Nothing is
# built at import; callers ask for what they need.
import sys

from config import ConfigError


def on_device():
    return sys.platform == "esp32"


def make_display(cfg, root="", board=None):
    """The panel named by the board profile (board.json; the v0 kiosk without
    one). The host draws the profile's size to a PBM instead of a panel;
    config.json's "display" still overrides the driver."""
    if board is None:
        import board as b

        board = b.load(root)
    kind = cfg.display or (board.driver if on_device() else "host")
    d = board.display
    if kind == "host":
        from display_host import HostDisplay

        return HostDisplay(root, board.width, board.height)
    if kind == "ssd1306":
        from machine import I2C, Pin

        from display_ssd1306 import Ssd1306Display

        pins = cfg.i2c or {}
        i2c = I2C(pins.get("id", d.get("i2c", 0)), scl=Pin(pins.get("scl", d.get("scl", 22))),
                  sda=Pin(pins.get("sda", d.get("sda", 21))), freq=d.get("freq", 400000))
        return Ssd1306Display(i2c, pins.get("addr", d.get("addr", 0x3C)))
    if kind == "ssd1680":
        from machine import SPI, Pin

        from display_ssd1680 import Ssd1680Display

        spi = SPI(d.get("spi", 1), baudrate=d.get("freq", 4000000), sck=Pin(d["sck"]),
                  mosi=Pin(d["mosi"]))
        return Ssd1680Display(spi, Pin(d["cs"], Pin.OUT), Pin(d["dc"], Pin.OUT),
                              Pin(d["rst"], Pin.OUT), Pin(d["busy"], Pin.IN),
                              board.width, board.height, d.get("full_every", 20),
                              d.get("full_every_s", 3600))
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
