# MicroPython: the live heap taken by importing the whole firmware (main and all
# it imports, the largest display driver too), after gc.collect. Prints one line.
import gc
import sys

if ".frozen" not in sys.path:
    sys.path.append(".frozen")

gc.collect()
base = gc.mem_alloc()
import device  # noqa: E402,F401
import display_ssd1680  # noqa: E402,F401
import main  # noqa: E402,F401

gc.collect()
print("IMPORT base=%d firmware=%d" % (base, gc.mem_alloc() - base))
