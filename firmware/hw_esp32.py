# ESP32-only hardware (hw.py imports it on the device only): the reset cause
# and the battery ADC.
import machine

from protocol import record


def reset_cause():
    c = machine.reset_cause()
    if c == machine.PWRON_RESET:
        return record.RESET_POWER_ON
    if c == machine.HARD_RESET:
        return record.RESET_HARD
    if c == machine.WDT_RESET:  # the port counts the chip's other watchdogs (and a panic) here
        return record.RESET_WDT
    if c == machine.DEEPSLEEP_RESET:
        return record.RESET_DEEPSLEEP
    if c == machine.SOFT_RESET:
        return record.RESET_SOFT
    return record.RESET_UNKNOWN


def battery(b):
    """hw.make_battery on the chip: VBAT through a divider into an ADC pin."""
    adc = machine.ADC(machine.Pin(b["adc_pin"]), atten=machine.ADC.ATTN_11DB)
    k = int(b.get("divider", 1) * 1000)  # ints when reading: no float per read

    def read_mv():
        return adc.read_uv() // 1000 * k // 1000

    return read_mv, int(b["low_mv"])
