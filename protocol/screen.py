# Screen layout shared by the cloud, which renders a display's label and QR
# into 1-bit bitmaps ("art", protocol/devconfig.py) sized for its panel, and the
# firmware, which only places and blits them. One rule, so the art the cloud
# makes is the art the panel has room for.
#
#   +--------------------------------+-----------+
#   | label art (or 8x8 text label)  |           |
#   +--------------------------------+  QR code  |
#   |          4919-27 (digits)      |  (right,  |
#   |  [=========------] window bar  |  if room) |
#   +--------------------------------+-----------+
#   | shopper host            status marks       |  STATUS_H rows
#   +--------------------------------------------+
STATUS_H = 10  # the bottom band: the shopper URL's host, or "not synced", and the marks
QR_QUIET = 2  # quiet modules around the QR (phones read 2 on a small panel)
MIN_QR_SCALE = 3  # px per module: at about 0.23 mm/px (2.9" e-paper) 0.7 mm modules
MIN_CODE_W = 160  # px the code keeps beside a QR, or there is no QR


def label_h(ph):
    """Rows of the label art on a panel ph rows high."""
    return 24 if ph >= 100 else 16


def qr_scale(pw, ph, n):
    """Pixels per module for an n-module QR at the right edge of a pw x ph
    panel: the smallest a phone reads well, so the code keeps the most room;
    0 when the panel has no room for one."""
    if n <= 0:
        return 0
    side = MIN_QR_SCALE * (n + 2 * QR_QUIET)
    if side > ph - STATUS_H or pw - side < MIN_CODE_W:
        return 0
    return MIN_QR_SCALE


def qr_side(pw, ph, n):
    """Width of the QR column (quiet zone included), 0 without a QR."""
    return qr_scale(pw, ph, n) * (n + 2 * QR_QUIET)


def label_w(pw, ph, n):
    """Columns of the label art beside an n-module QR (n = 0: no QR)."""
    return pw - qr_side(pw, ph, n)
