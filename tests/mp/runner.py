# Runs test_* functions of one module under MicroPython (or CPython) and prints
# one line per test and the plain closing line "N passed, N failed".
import sys


def main():
    name = sys.argv[1]
    only = sys.argv[2] if len(sys.argv) > 2 else None
    mod = __import__(name)
    for part in name.split(".")[1:]:
        mod = getattr(mod, part)
    passed = failed = 0
    for attr in sorted(dir(mod)):
        if not attr.startswith("test_") or (only and attr != only):
            continue
        try:
            getattr(mod, attr)()
            print("PASS", attr)
            passed += 1
        except Exception as e:
            print("FAIL", attr, repr(e))
            sys.print_exception(e) if hasattr(sys, "print_exception") else None
            failed += 1
    print("mp: %d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed or not passed else 0)


main()
