"""``flowruns-emulator serve``: run the vendor emulators on 127.0.0.1."""

from __future__ import annotations

import argparse
import sys

from airflow_provider_flowruns.testing.server import VENDORS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="flowruns-emulator", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the emulators over HTTP")
    serve.add_argument(
        "--vendor",
        action="append",
        metavar="VENDOR",
        help=f"repeatable; default: all of {', '.join(sorted(VENDORS))}; or module:Class of your own emulator",
    )
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument("--speed", type=float, default=1.0, help="emulated seconds per real second")
    serve.add_argument("--log-level", default="warning")
    serve.add_argument("--ssl-certfile", help="serve HTTPS with this certificate (PEM)")
    serve.add_argument("--ssl-keyfile", help="... and this private key (PEM)")
    args = parser.parse_args(argv)

    import uvicorn

    from airflow_provider_flowruns.testing.server import EmulatorServer

    try:
        server = EmulatorServer(args.vendor, speed=args.speed)
    except ValueError as exc:  # an unknown vendor name
        parser.error(str(exc))
    scheme = "https" if args.ssl_certfile else "http"
    print(
        f"flowruns-emulator: {', '.join(sorted(server.emulators))} on {scheme}://{args.host}:{args.port}/<vendor>",
        flush=True,
    )
    uvicorn.run(
        server.app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        ssl_certfile=args.ssl_certfile,
        ssl_keyfile=args.ssl_keyfile,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
