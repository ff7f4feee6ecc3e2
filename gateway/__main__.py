"""`python -m gateway ...`: the gateway's commands without the rest of `mcode` (the deployed
service starts `python -m gateway run`, deploy/systemd/mcode-gateway.service).

`run` is parsed here with argparse and goes straight to gateway.service.serve; every other command
goes to gateway.cli (typer), as under `mcode gateway`. Why: the service lives for months on a
Raspberry Pi with a 50 MB budget, and a typer command costs about 13 MB of RSS (typer 0.29 builds
a pydantic TypeAdapter per parameter, which loads pydantic), typer and rich 4 MB more, and `mcode`'s
other tiers 3 MB (docs/performance.md, issue 17). `run`'s options are the same as `mcode gateway
run`'s.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def run_main(argv: list[str]) -> int:
    from gateway.logs import FORMATS
    from gateway.service import serve

    ap = argparse.ArgumentParser(prog="python -m gateway run", description="Run until SIGTERM/SIGINT.")
    ap.add_argument("--config", "-c", type=Path, default=Path("gateway.toml"), help="gateway.toml")
    ap.add_argument("--no-ble", action="store_true", help="uplink and batching only")
    ap.add_argument("--verbose", "-v", action="store_true")
    ap.add_argument("--log-format", choices=FORMATS, default="text",
                    help="text, or json: one object per line (ts, level, logger, msg, extra fields)")
    a = ap.parse_args(argv)
    return serve(a.config, collect=not a.no_ble, verbose=a.verbose, log_format=a.log_format)


def main() -> None:
    if sys.argv[1:2] == ["run"]:
        sys.exit(run_main(sys.argv[2:]))
    from gateway.cli import app

    app(prog_name="mcode gateway")


if __name__ == "__main__":
    main()
