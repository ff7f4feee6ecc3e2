# Host boot step standing in for the ESP32 port's own: mount the firmware's ROMFS
# image at /rom and put it first on sys.path, then run the target.
#   micropython romboot.py MODULE[:FUNC] [ARGS...]
# sim/mprun.py maps the image outside the GC heap (as the ESP32 memory-maps its
# ROMFS partition) and passes its address in MCODE_ROMFS=addr:len, so bytecode
# runs in place and the heap holds only what the firmware allocates.
import os
import sys

import uctypes
import vfs


def boot():
    spec = os.getenv("MCODE_ROMFS")
    if spec:
        addr, n = spec.split(":")
        vfs.mount(vfs.VfsRom(uctypes.bytearray_at(int(addr), int(n))), "/rom")
        # /rom/host: the host's stand-ins for the ESP32's C modules (bluetooth).
        sys.path.insert(0, "/rom")
        sys.path.insert(0, "/rom/host")
    if ".frozen" not in sys.path:
        sys.path.append(".frozen")
    target = sys.argv[1]
    sys.argv.pop(0)  # the target sees its own argv, as if run directly
    name, _, func = target.partition(":")
    mod = __import__(name)
    for part in name.split(".")[1:]:
        mod = getattr(mod, part)
    if func:
        getattr(mod, func)()


boot()
