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
    serve.add_argument("--services", metavar="A,B",
                       help="services to host (default: the whole cloud: "
                            "api,identity,image,placement,scheduler,conductor,compute)")
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

    sim = commands.add_parser(
        "sim", help="run a capacity simulation of a scenario file (virtual time)")
    sim.add_argument("scenario", help="scenario TOML file (see sim/scenarios/README.md)")
    sim.add_argument("--seed", type=int, help="seed (default: the scenario's)")
    sim.add_argument("--out", metavar="DIR",
                     help="write report.json, report.txt, metrics.prom and plots here")
    sim.add_argument("--compare", metavar="FILE",
                     help="also run the workload under the [scheduler] table of FILE and "
                          "print both side by side")
    sim.add_argument("--no-plots", action="store_true", help="do not draw PNG plots")
    sim.add_argument("--json", action="store_true", help="print the JSON report, not text")
    sim.add_argument("--log-level", metavar="LEVEL", default="ERROR",
                     help="DEBUG, INFO, WARNING, ERROR (default), ...")
    _add_db_parser(commands)
    policy = commands.add_parser("policy", help="the API policy rules")
    policy_actions = policy.add_subparsers(dest="policy_command", metavar="ACTION",
                                           required=True)
    policy_actions.add_parser("sample", help="print every rule and its default, as YAML")
    check = policy_actions.add_parser("check", help="check a policy file; print what it changes")
    check.add_argument("file", help="YAML or JSON file of rule name -> check string")
    commands.add_parser("version", help="print the version")
    return parser


def _add_db_parser(commands: argparse._SubParsersAction[_Parser]) -> None:
    db = commands.add_parser("db", help="manage the database schema (migrations)")
    actions = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    upgrade = actions.add_parser("upgrade", help="upgrade the schema (default: to the newest)")
    upgrade.add_argument("revision", nargs="?", default="head", help="target (default: head)")
    downgrade = actions.add_parser("downgrade", help="downgrade the schema to a revision")
    downgrade.add_argument("revision", help="target revision, or 'base' to drop every table")
    version = actions.add_parser("version", help="print the database's revision and the newest")
    for p in (upgrade, downgrade, version):
        p.add_argument("--url", metavar="URL",
                       help="database URL (default: [database] url, else the state directory)")
        p.add_argument("--config", metavar="FILE", help="TOML file (default: $NIMBUS_CONFIG)")
        p.add_argument("--set", metavar="KEY=VALUE", action="append", default=[],
                       help="set section.key=value (repeatable)")
    revision = actions.add_parser(
        "revision", help="(developers) write a migration script for what the schema gained")
    revision.add_argument("-m", "--message", required=True, help="what the revision does")
    revision.add_argument("--rev-id", metavar="ID", help="revision id (default: random)")


#: Benchmarks by name: the module under bench/ whose main(argv) runs it.
BENCHMARKS = {
    "api": "nimbus.bench.api",
    "lifecycle": "nimbus.bench.lifecycle",
    "rpc": "nimbus.bench.rpc",
    "scheduler": "nimbus.bench.scheduler",
    "sim": "nimbus.bench.sim",
    "store": "nimbus.bench.store",
}


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
    if args.command == "policy":
        return _policy(args)
    if args.command == "sim":
        from nimbus.sim.main import main as sim_main

        try:
            return sim_main(args)
        except ConfigError as exc:
            return _fail(exc.message, EXIT_USAGE)
    if args.command == "bench":
        import importlib

        bench_main = importlib.import_module(BENCHMARKS[args.name]).main
        return int(bench_main(args.args))
    try:
        return _db(args) if args.command == "db" else _serve(args)
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


def _policy(args: argparse.Namespace) -> int:
    from nimbus.config import PolicySection, load_policy
    from nimbus.core.policy import DEFAULT_POLICY, sample

    if args.policy_command == "sample":
        print(sample(), end="")
        return 0
    try:
        policy = load_policy(PolicySection(file=args.file))
    except ConfigError as exc:
        return _fail(exc.message, EXIT_USAGE)
    changed = {name: check for name, check in policy.checks.items()
               if DEFAULT_POLICY.checks.get(name) != check}
    for name, check in sorted(changed.items()):
        print(f'"{name}": "{check}"')
    print(f"{args.file}: valid, {len(changed)} rule(s) differ from the defaults")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from nimbus.serve import serve  # keeps `nimbus version` from importing aiohttp

    path = args.config or os.environ.get("NIMBUS_CONFIG") or None
    config = load_config(path, os.environ, [*args.set, *_flag_overrides(args)])
    configure_logging(config.log)
    return asyncio.run(serve(config))


def _db(args: argparse.Namespace) -> int:
    from nimbus import migrate
    from nimbus.db import masked, open_database

    if args.db_command == "revision":
        print(asyncio.run(migrate.autogenerate(args.message, args.rev_id)) or "no changes")
        return 0
    overrides: list[str | Override] = list(args.set)
    if args.url is not None:
        overrides.append(Override("database.url", args.url, f"--url {masked(args.url)}"))
    path = args.config or os.environ.get("NIMBUS_CONFIG") or None
    config = load_config(path, os.environ, overrides)
    configure_logging(config.log)
    db = open_database(config)

    async def run() -> int:
        try:
            await db.check()
            if args.db_command == "version":
                have = await migrate.current(db)
                print(f"current: {have or '(none)'}")
                print(f"head: {migrate.head()}")
                return 0
            before = await migrate.current(db)
            if args.db_command == "upgrade":
                after = await migrate.upgrade(db, args.revision)
            else:
                after = await migrate.downgrade(db, args.revision)
            if before == after:
                print(f"nimbus: database {db.masked_url} already at {after or '(none)'}")
            else:
                print(f"nimbus: database {db.masked_url} {args.db_command}d from "
                      f"{before or '(none)'} to {after or '(none)'}")
            return 0
        finally:
            await db.close()

    return asyncio.run(run())


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
