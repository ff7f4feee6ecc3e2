# ESP32-only hardware (hw.py imports it on the device only): the panels on
# their buses, the reset cause and the battery ADC.
import machine

from config import ConfigError
from protocol import record


def display(kind, cfg, board):
    """hw.make_display on the chip: the `kind` panel on the profile's pins
    (config.json's "i2c" may override the kiosk's)."""
    d = board.display
    Pin = machine.Pin
    if kind == "ssd1306":
        from display_ssd1306 import Ssd1306Display

        pins = cfg.i2c or {}
        i2c = machine.I2C(pins.get("id", d.get("i2c", 0)), scl=Pin(pins.get("scl", d.get("scl", 22))),
                          sda=Pin(pins.get("sda", d.get("sda", 21))), freq=d.get("freq", 400000))
        return Ssd1306Display(i2c, pins.get("addr", d.get("addr", 0x3C)), board.steps)
    if kind == "ssd1680":
        from display_ssd1680 import Ssd1680Display

        spi = machine.SPI(d.get("spi", 1), baudrate=d.get("freq", 4000000), sck=Pin(d["sck"]),
                          mosi=Pin(d["mosi"]))
        return Ssd1680Display(spi, Pin(d["cs"], Pin.OUT), Pin(d["dc"], Pin.OUT),
                              Pin(d["rst"], Pin.OUT), Pin(d["busy"], Pin.IN),
                              board.width, board.height, d.get("full_every", 20),
                              d.get("full_every_s", 3600), steps=board.steps)
    raise ConfigError("unknown display " + str(kind))


def reset_cause():
    c = machine.reset_cause()
    if c == machine.PWRON_RESET:
        return record.RESET_POWER_ON
    if c == machine.HARD_RESET:
        return record.RESET_HARD
    if c == machine.WDT_RESET:  # the port counts the chip's other watchdogs (and a panic) here
        return record.RESET_WDT
    if c == machine.DEEPSLEEP_RESET:
        return record.RESET_DEEPSLEEP
    if c == machine.SOFT_RESET:
        return record.RESET_SOFT
    return record.RESET_UNKNOWN


def battery(b):
    """hw.make_battery on the chip: VBAT through a divider into an ADC pin."""
    adc = machine.ADC(machine.Pin(b["adc_pin"]), atten=machine.ADC.ATTN_11DB)
    k = int(b.get("divider", 1) * 1000)  # ints when reading: no float per read

    def read_mv():
        return adc.read_uv() // 1000 * k // 1000

    return read_mv, int(b["low_mv"])
