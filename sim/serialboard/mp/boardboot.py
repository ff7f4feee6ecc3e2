# The virtual serial board's "port": what the ESP32 port's C start-up does
# before the REPL, run by the unix port (`micropython -i boardboot.py`; the
# REPL that follows is the unix port's own, raw REPL included).
#   1. the ROMFS partition (mapped by child.py, address in MCODE_ROMFS) at /rom;
#   2. the flash: a littlefs2 image on a block device backed by a file (format
#      on first boot, as the port does), mounted at / and made the cwd;
#   3. `machine` with reset(), reset_cause() and unique_id(), as the ESP32 port
#      has them, and its bluetooth (the host stand-in) at /.port;
#   4. boot.py, then main.py unless the REPL is in raw mode (MCODE_RAW=1),
#      as the ESP32 port does after a soft reset in raw mode.
import os
import sys

import micropython
import vfs

_BS = 4096


class FileBdev:
    # The extended block protocol littlefs uses (offsets inside a block).
    # - Every write reaches the file at once: MicroPython's files are unbuffered
    #   (a write is a write(2); flush is an fsync, which only a crash of the host
    #   would need), so a killed process - the board's power cut - loses nothing
    #   littlefs was told is written.
    # - The methods are native code. littlefs calls them from C in the middle of
    #   an operation; in bytecode the VM's pending checks run there, so a Ctrl-C
    #   (mpremote sends one to stop the firmware) raised KeyboardInterrupt inside
    #   readblocks and unwound through littlefs half-way, leaving its in-RAM state
    #   out of step with the flash for the rest of the boot. On the ESP32 the block
    #   device is C and the interrupt waits until littlefs returns; native code
    #   waits too (tests/sim/test_serialboard.py checks it).
    # - Nothing allocates: lfs may call in from a finalizer, with the heap locked.
    def __init__(self, path, blocks):
        self.n = blocks
        self.ff = b"\xff" * _BS  # erased NOR flash reads 0xff
        try:
            self.f = open(path, "r+b")
        except OSError:
            self.f = open(path, "w+b")
        self.f.seek(0, 2)
        for _ in range((blocks * _BS - self.f.tell()) // _BS):
            self.f.write(self.ff)

    @micropython.native
    def readblocks(self, block, buf, off=0):
        self.f.seek(block * _BS + off)
        self.f.readinto(buf)

    @micropython.native
    def writeblocks(self, block, buf, off=0):
        self.f.seek(block * _BS + off)
        self.f.write(buf)

    @micropython.native
    def ioctl(self, op, arg):
        if op == 4:
            return self.n
        if op == 5:
            return _BS
        if op == 6:  # erase: the block reads 0xff again
            self.f.seek(arg * _BS)
            self.f.write(self.ff)
        return 0


def _rom():
    spec = os.getenv("MCODE_ROMFS")
    if spec:
        import uctypes

        addr, n = spec.split(":")
        vfs.mount(vfs.VfsRom(uctypes.bytearray_at(int(addr), int(n))), "/rom")
        sys.path.insert(1, "/rom")
        sys.path.insert(2, "/rom/lib")


def _flash():
    state = os.getenv("MCODE_STATE")
    blocks = int(os.getenv("MCODE_FLASH_BLOCKS") or "512")
    # Opened before / is unmounted; the file stays open through the board's life.
    bdev = FileBdev(state + "/flash.bin", blocks)
    try:
        fs = vfs.VfsLfs2(bdev)
    except OSError:  # blank or corrupt: the port formats it, as on first boot
        print("Performing initial setup")  # what the ESP32 port's inisetup says
        vfs.VfsLfs2.mkfs(bdev)
        fs = vfs.VfsLfs2(bdev)
    vfs.umount("/")
    vfs.mount(fs, "/")
    os.chdir("/")


def _port_modules():
    # The ESP32 port's C modules the unix port lacks (bluetooth), as host stand-ins compiled to
    # .mpy (sim/micropython), at the end of sys.path: what the board has built in.
    d = os.getenv("MCODE_PORT_MODULES")
    if d:
        vfs.mount(vfs.VfsPosix(d), "/.port")
        sys.path.append("/.port")


def _machine():
    import machine as m

    class Machine:
        pass

    shim = Machine()
    for k in dir(m):
        if not k.startswith("__"):
            setattr(shim, k, getattr(m, k))
    cause = int(os.getenv("MCODE_RESET_CAUSE") or "1")
    shim.PWRON_RESET, shim.HARD_RESET, shim.WDT_RESET = 1, 2, 3
    shim.DEEPSLEEP_RESET, shim.SOFT_RESET = 4, 5
    shim.reset_cause = lambda: cause
    mac = bytes.fromhex((os.getenv("MCODE_RADIO_ADDR") or "").replace(":", ""))
    shim.unique_id = lambda: mac  # the chip's MAC, as on the ESP32 port

    def reset():
        # The supervisor sees a death by SIGUSR1 and boots the board again.
        os.system("kill -10 $PPID")
        import time

        time.sleep(5)

    shim.reset = reset
    sys.modules["machine"] = shim


def _run(name):
    try:
        os.stat(name)
    except OSError:
        return
    try:
        try:
            exec(open(name).read(), {"__name__": "__main__"})
        except SystemExit as e:
            # firmware/main.py on the host asks its supervisor for a restart (75) or, after a
            # crash (1), does what it does on the ESP32: wait 5 s, then machine.reset().
            if e.value != 75:
                import time

                time.sleep(5)
            os.system("kill -12 $PPID" if e.value == 1 else "kill -10 $PPID")
            time_out()
    except KeyboardInterrupt:
        print("KeyboardInterrupt")
    except Exception as e:  # as the port: the traceback, then the REPL
        sys.print_exception(e)


def time_out():
    import time

    time.sleep(5)  # the signal ends this process first


def _sweep():
    # A soft reset on the ESP32 port sweeps the heap, which closes (flushes) open files.
    import gc

    gc.collect()
    vfs.umount("/")


def boot():
    sys.path[:] = ["", ".frozen", "/lib"]
    _rom()
    _flash()
    sys.atexit(_sweep)
    _port_modules()
    _machine()
    _run("boot.py")
    if os.getenv("MCODE_RAW") != "1":
        _run("main.py")


boot()
