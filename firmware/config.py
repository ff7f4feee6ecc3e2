# Device configuration: config.json in the flash root, written at provisioning.
# Parsed once at boot into plain attributes; hex fields become bytes.
import json

FILE = "config.json"


class ConfigError(Exception):
    pass


class Config:
    def __init__(self, d):
        try:
            self.device_id = bytes.fromhex(d["device_id"])
            self.key = bytes.fromhex(d["key"])
            self.base = str(d["base"])
            self.slot = int(d["slot"])
            self.slots = int(d["slots"])
            self.digits = int(d["digits"])
            self.period = int(d["period"])
        except (KeyError, ValueError, TypeError) as e:
            raise ConfigError("bad config: %r" % (e,))
        self.label = str(d.get("label", ""))
        self.name = str(d.get("name", "mc-" + d["device_id"][-4:]))
        self.fw = int(d.get("fw", 0))
        # Optional hardware hints for the device build; the host ignores them.
        self.display = d.get("display")
        self.i2c = d.get("i2c")
        if len(self.device_id) != 8 or len(self.key) != 32:
            raise ConfigError("device_id must be 8 bytes and key 32 bytes")
        if self.period < 1 or not self.base.isdigit():
            raise ConfigError("bad period or base")


def load(root=""):
    try:
        with open(root + FILE) as f:
            d = json.load(f)
    except OSError:
        raise ConfigError("no " + root + FILE)
    return Config(d)
