# mcode wire protocol v0: the one implementation of every rule shared by the
# device (MicroPython), the gateway and the cloud (CPython). Everything here
# except batch.py and gwconfig.py (gateway and cloud only) must stay importable
# by MicroPython and compile with mpy-cross; docs/protocol.md is the prose contract.
