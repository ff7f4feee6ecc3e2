"""What `mcode tools` exits with. Every failure a person can cause or fix is a ToolError: one
line in their language saying what to plug in or type next, never a traceback.

Exit codes (docs/technician.md lists them too):
  0  done
  1  a check failed: read-back mismatch, the device did not boot, self-test failed
  2  bad input: unknown board, --arch, location or campaign, a missing file
  3  the serial port: missing, busy, no permission, or no MicroPython answering on it
  4  the cloud: unreachable, or it refused the technician key or the request
  5  wrong board: the device is not the board named by --board
"""

from __future__ import annotations

OK = 0
CHECK_FAILED = 1
BAD_INPUT = 2
PORT = 3
CLOUD = 4
WRONG_BOARD = 5


class ToolError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code
