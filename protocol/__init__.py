# mcode wire protocol v0: the one implementation of every rule shared by the
# device (MicroPython), the gateway and the cloud (CPython). A module that says
# `HOST_ONLY = True` is for the gateway and cloud only and is never shipped to a
# device (tools/build.py); every other module must stay importable by MicroPython
# and compile with mpy-cross. docs/protocol.md is the prose contract.
