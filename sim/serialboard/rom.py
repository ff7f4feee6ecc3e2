"""What the ESP32's ROM bootloader prints on a reset, by chip: the `rst:` line names the cause.

`mcode tools monitor` decodes these lines (tools/monitor.py); the virtual board prints them.
Codes are the ESP-IDF's RESET_REASON values (components/esp_rom/include/<chip>/rom/rtc.h)."""

from __future__ import annotations

POWER_ON = "power_on"
SOFTWARE = "software"  # machine.reset(), or the firmware restarting itself
WATCHDOG = "watchdog"
PANIC = "panic"  # a crash of the interpreter itself

# chip -> (first lines, {cause: (rst code, ROM name)})
CHIPS: dict[str, tuple[str, dict[str, tuple[int, str]]]] = {
    "ESP32-C3": ("ESP-ROM:esp32c3-api1-20210207\r\nBuild:Feb  7 2021\r\n",
                 {POWER_ON: (0x1, "POWERON"), SOFTWARE: (0xC, "RTC_SW_CPU_RST"),
                  WATCHDOG: (0x7, "TG0WDT_SYS_RST"), PANIC: (0xC, "RTC_SW_CPU_RST")}),
    "ESP32-WROOM-32": ("ets Jun  8 2016 00:22:57\r\n\r\n",
                       {POWER_ON: (0x1, "POWERON_RESET"), SOFTWARE: (0xC, "SW_CPU_RESET"),
                        WATCHDOG: (0x7, "TG0WDT_SYS_RESET"), PANIC: (0xC, "SW_CPU_RESET")}),
    "ESP32-S3": ("ESP-ROM:esp32s3-20210327\r\nBuild:Mar 27 2021\r\n",
                 {POWER_ON: (0x1, "POWERON"), SOFTWARE: (0xC, "RTC_SW_CPU_RST"),
                  WATCHDOG: (0x7, "TG0WDT_SYS_RST"), PANIC: (0xC, "RTC_SW_CPU_RST")}),
}
# machine.reset_cause() values of the ESP32 port
MACHINE_CAUSE = {POWER_ON: 1, SOFTWARE: 5, WATCHDOG: 3, PANIC: 2}
SOFT_REBOOT = b"MPY: soft reboot\r\n"


def banner(chip: str, cause: str) -> bytes:
    head, codes = CHIPS.get(chip, CHIPS["ESP32-WROOM-32"])
    code, name = codes[cause]
    return (f"{head}rst:0x{code:x} ({name}),boot:0xc (SPI_FAST_FLASH_BOOT)\r\n"
            "load:0x3fcd5820,len:0xe24\r\nentry 0x403cc71c\r\n").encode()


def decode(line: str) -> str | None:
    """The cause named by a ROM `rst:0x.. (NAME)` line, or None for any other line."""
    if not line.startswith("rst:0x"):
        return None
    name = line[line.find("(") + 1:line.find(")")]
    for _, codes in CHIPS.values():
        for cause, (_, rom_name) in codes.items():
            if rom_name == name:
                return cause
    return "unknown"
