# Boot bookkeeping across resets: boot.bin in the flash root, 3 bytes
#   pending  1 from boot until the boot is stable (has run for a while), then 0
#   fails    boots in a row, before this one, that ended while still pending
#   note     a reset cause the firmware wrote just before it went down: the host
#            watchdog (RESET_WDT), main's crash handler (RESET_CRASH), a
#            deliberate restart (RESET_SOFT); 0 for none. Consumed by the next boot.
# always replaced whole (temp file + rename, atomic on littlefs), so a power cut
# leaves the old or the new state (tests/firmware/mp_bootstate_cut.py cuts power
# at every flash write of it, clean and torn). A state that cannot be written
# does not stop the boot: begin() says so and carries on.
#
# A boot's reset cause (protocol.record.RESET_*, logged in its BOOT record) is
# the note if there is one, else what the chip says (hw.reset_cause; the host
# has no such thing), else RESET_CRASH if the previous boot died before it was
# stable, else power-on. main.py boots in safe mode after a few failed boots in
# a row. Used a few times per boot, so main.py loads it for the call and drops
# it again rather than keeping its code in the heap.
import os

from protocol import record


def state(root, b=None):
    """Writes (pending, fails, note) if b is given; else returns it, zeros when
    there is no (whole) state."""
    p = root + "boot.bin"
    if b is not None:
        with open(p + ".tmp", "wb") as f:
            f.write(bytes(b))
        os.rename(p + ".tmp", p)
        return b
    try:
        with open(p, "rb") as f:
            b = f.read(3)
    except OSError:
        b = b""
    if len(b) < 3:
        return 0, 0, 0
    return b[0], b[1], b[2]


def begin(root, hw=None):
    """The boot, given the chip's reset cause (None on the host): returns (this
    boot's reset cause, failed boots in a row before it), marks it pending."""
    b = state(root)
    if b[2]:
        c = b[2]
    elif hw:  # 0 (unknown) tells nothing either
        c = hw
    else:
        c = record.RESET_CRASH if b[0] else record.RESET_POWER_ON
    fails = min(b[1] + 1, 255) if b[0] else 0
    try:
        state(root, (1, fails, 0))
    except OSError as e:  # a full or failing flash: boot without the bookkeeping
        print("boot.bin", repr(e))
    return c, fails


def stable(root):
    """The boot has run long enough: it is not a failure whatever ends it.
    Keeps a note written since (the reset that follows must still log it)."""
    state(root, (0, 0, state(root)[2]))


def note(root, cause):
    """Record why this boot is about to end. A deliberate restart (RESET_SOFT)
    also ends it as a non-failure: it does not count toward safe mode."""
    b = state(root)
    state(root, (0, 0, cause) if cause == record.RESET_SOFT else (b[0], b[1], cause))
