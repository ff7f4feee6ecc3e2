# Board profile: board.json in the flash root, copied from hardware/boards/ by
# the build or provisioning (tools/boards.py validates it there). Read once at
# boot; hw.py picks the display driver and size from it. Without the file the
# device is the v0 poster kiosk (SSD1306 128x64 on I2C0, SDA 21, SCL 22).
import json

FILE = "board.json"


class Board:
    def __init__(self, d):
        self.name = str(d.get("board", "?"))
        disp = d.get("display") or {}
        self.display = disp
        self.driver = str(disp.get("driver", "ssd1306"))
        self.width = int(disp.get("width", 128))
        self.height = int(disp.get("height", 64))
        self.steps = int(disp.get("bar_steps", 0))  # the window bar's steps (0: none)
        self.buttons = d.get("buttons") or []
        self.battery = d.get("battery")  # None on mains
        self.status_led = d.get("status_led")
        self.tx_power = int(d.get("ble_tx_power_dbm", 0))


DEFAULT = {"board": "kiosk-esp32-ssd1306",
           "display": {"driver": "ssd1306", "bus": "i2c", "width": 128, "height": 64,
                       "i2c": 0, "sda": 21, "scl": 22, "addr": 60, "freq": 400000},
           "status_led": 2}


def load(root=""):
    try:
        with open(root + FILE) as f:
            d = json.load(f)
    except OSError:
        d = DEFAULT
    return Board(d)
