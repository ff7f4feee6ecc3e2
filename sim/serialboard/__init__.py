"""A virtual ESP32 on a serial port: see board.py. `python -m sim.serialboard --help`."""
