"""Virtual BLE radio on bumble virtual controllers (see sim.radio.hub)."""

from sim.radio.hub import RadioHub

__all__ = ["RadioHub"]
