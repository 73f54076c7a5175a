"""The ``nimbus`` command line.

Errors a user can cause (a bad flag, a bad configuration, a port in use) print
exactly one line, ``nimbus: error: <message>``, and exit 2 for usage and
configuration errors or 1 for errors at run time; never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from importlib import metadata
from typing import NoReturn

from nimbus.config import Override, configure_logging, load_config
from nimbus.core.errors import ConfigError, NimbusError

log = logging.getLogger("nimbus")

EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A command line argparse refused."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = _Parser(prog="nimbus", description="A compute cloud controller.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = commands.add_parser("serve", help="run services until interrupted")
    serve.add_argument("--config", metavar="FILE", help="TOML file (default: $NIMBUS_CONFIG)")
    serve.add_argument("--services", metavar="A,B", help="services to host (default: api)")
    serve.add_argument("--listen", metavar="HOST:PORT", help="where the API listens")
    serve.add_argument("--transport", metavar="NAME", help="local or zmq")
    serve.add_argument("--broker", metavar="URL", help="ZeroMQ broker URL")
    serve.add_argument("--host", metavar="NAME", help="this host's name among services")
    serve.add_argument(
        "--set", metavar="KEY=VALUE", action="append", default=[],
        help="set section.key=value (repeatable); wins over file and environment",
    )
    serve.add_argument("--log-level", metavar="LEVEL", help="DEBUG, INFO, WARNING, ...")

    bench = commands.add_parser("bench", help="run a benchmark (ratios against baselines)")
    bench.add_argument("name", choices=sorted(BENCHMARKS), help="which benchmark")
    bench.add_argument("args", nargs=argparse.REMAINDER, help="the benchmark's own flags")

    commands.add_parser("version", help="print the version")
    return parser


#: Benchmarks by name: the module under bench/ whose main(argv) runs it.
BENCHMARKS = {"rpc": "nimbus.bench.rpc"}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``nimbus`` command; returns the process exit status."""
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0
    if args.command == "version":
        print(f"nimbus {_version()}")
        return 0
    if args.command == "bench":
        import importlib

        bench_main = importlib.import_module(BENCHMARKS[args.name]).main
        return int(bench_main(args.args))
    try:
        return _serve(args)
    except ConfigError as exc:
        return _fail(exc.message, EXIT_USAGE)
    except NimbusError as exc:
        return _fail(exc.message, EXIT_RUNTIME)
    except KeyboardInterrupt:  # a signal before the handlers were installed
        return EXIT_INTERRUPTED
    except Exception as exc:
        log.debug("unexpected error", exc_info=True)
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return _fail(f"{detail} (--log-level DEBUG shows the traceback)", EXIT_RUNTIME)


def _serve(args: argparse.Namespace) -> int:
    from nimbus.serve import serve  # keeps `nimbus version` from importing aiohttp

    path = args.config or os.environ.get("NIMBUS_CONFIG") or None
    config = load_config(path, os.environ, [*args.set, *_flag_overrides(args)])
    configure_logging(config.log)
    return asyncio.run(serve(config))


def _flag_overrides(args: argparse.Namespace) -> list[Override]:
    out: list[Override] = []
    simple = (
        ("services", "serve.services"),
        ("transport", "transport.kind"),
        ("broker", "transport.broker_url"),
        ("host", "serve.host"),
        ("log_level", "log.level"),
    )
    for attr, key in simple:
        value = getattr(args, attr)
        if value is not None:
            out.append(Override(key, value, f"--{attr.replace('_', '-')} {value}"))
    if args.listen is not None:
        host, port = parse_listen(args.listen)
        source = f"--listen {args.listen}"
        if host:
            out.append(Override("api.listen", host, source))
        out.append(Override("api.port", port, source))
    return out


def parse_listen(text: str) -> tuple[str, str]:
    """``HOST:PORT``, ``[V6]:PORT`` or ``PORT`` as (host, port); host is empty if absent."""
    text = text.strip()
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
    elif ":" in text:
        host, sep, port = text.rpartition(":")
    elif text.isdigit():
        host, sep, port = "", ":", text
    else:
        host, sep, port = "", "", ""
    if not sep or not port:
        raise ConfigError(f"--listen: expected HOST:PORT, got {text!r}")
    return host, port


def _version() -> str:
    try:
        return metadata.version("nimbus-cloud")
    except metadata.PackageNotFoundError:
        return "unknown"


def _fail(message: str, code: int) -> int:
    print(f"nimbus: error: {message}", file=sys.stderr)
    return code
