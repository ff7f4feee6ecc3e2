# Typed codes (protocol/rotation.py normalize_code, split_digits), checked unchanged under
# CPython and MicroPython against typed_vectors.json (also printed in docs/protocol.md).
import json

from protocol import rotation


def _typed():
    here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
    with open(here + "/typed_vectors.json") as f:
        return json.load(f)


def test_typed_codes_normalize():
    for v in _typed()["normalize"]:
        assert rotation.normalize_code(v["typed"]) == v["code"], v["typed"]


def test_digits_only_codes_split_by_rented_bases():
    t = _typed()["split"]
    rented = t["rented"]

    def lengths(base):
        return rented.get(base)

    for v in t["cases"]:
        got = rotation.split_digits(v["digits"], lengths)
        assert (list(got) if got else None) == v["split"], v["digits"]
        if got:
            assert got[0] in rotation.base_prefixes(v["digits"])
