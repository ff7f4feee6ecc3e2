# Device configuration: config.json in the flash root, written at provisioning,
# then the overlay devconfig.bin: the last cloud-sealed config blob the device
# accepted over BLE (protocol/devconfig.py), kept verbatim and re-verified at
# boot. Parsed once at boot into plain attributes; hex fields become bytes.
import json
import os

from protocol import devconfig, keys
from protocol.hmac256 import HmacKey

FILE = "config.json"
OVERLAY = "devconfig.bin"
_TMP = "devconfig.tmp"


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
            raise ConfigError(f"bad config: {e!r}") from e
        self.label = str(d.get("label", ""))
        self.tx_power = int(d.get("tx_power", 0))  # dBm; applied to the radio once a sealed config sets it
        self.version = 0  # config version: the overlay's, 0 for config.json alone
        # From a sealed blob only: the shopper URL's host, and the art the cloud
        # rendered: (label, QR, path of the blob), each item as devconfig.unseal
        # gives it, (kind, w, h, offset in the blob) or None. One attribute, not
        # three: every name costs heap (docs/firmware.md, "Names").
        self.host = ""
        self.art = None
        self.name = str(d.get("name", "mc-" + d["device_id"][-4:]))
        self.fw = int(d.get("fw", 0))
        # Optional hardware hints for the device build; the host ignores them.
        self.display = d.get("display")
        self.i2c = d.get("i2c")
        if len(self.device_id) != 8 or len(self.key) != 32:
            raise ConfigError("device_id must be 8 bytes and key 32 bytes")
        if self.period < 1 or not self.base.isdigit():
            raise ConfigError("bad period or base")


    def apply(self, s, path):
        """Take a verified devconfig.Settings, unsealed from the file at path."""
        self.version = s.version
        self.base = s.base
        self.slot = s.slot
        self.slots = s.slots
        self.digits = s.digits
        self.period = s.period
        self.label = s.label
        self.tx_power = s.tx_power
        self.host = s.host
        self.art = (s.find(devconfig.ART_LABEL), s.find(devconfig.ART_QR), path)


def save_overlay(root, blob):
    """Atomically replace the overlay: write a temp file, then rename over it
    (littlefs renames atomically), so a power cut leaves the old or the new blob."""
    with open(root + _TMP, "wb") as f:
        f.write(blob)
    os.rename(root + _TMP, root + OVERLAY)


def _overlay(cfg, root, apply):
    try:
        with open(root + OVERLAY, "rb") as f:
            blob = f.read()
    except OSError:
        return
    st, s = devconfig.unseal(HmacKey(keys.config_key(cfg.key)), cfg.device_id, blob)
    if s is None:
        # Only a damaged flash gets here (the file is replaced by rename alone).
        print("config: overlay refused, status", st)
        return
    if apply:
        cfg.apply(s, root + OVERLAY)
    else:
        cfg.version = s.version  # still no replay of an older blob


def load(root="", apply=True):
    """config.json, then the overlay. apply=False (safe mode) keeps only the
    overlay's version, so the stale-version check still holds."""
    try:
        with open(root + FILE) as f:
            d = json.load(f)
    except OSError:
        raise ConfigError("no " + root + FILE) from None
    cfg = Config(d)
    _overlay(cfg, root, apply)
    return cfg
