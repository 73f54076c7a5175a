"""Loading configuration: precedence, conversion, and errors that name key and source."""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path

import pytest

from nimbus.config import NimbusConfig, Override, load_config
from nimbus.core.api.config import ApiConfig
from nimbus.core.errors import ConfigError


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "nimbus.toml"
    path.write_text(text)
    return str(path)


def test_defaults() -> None:
    cfg = load_config(None, {}, [])
    assert cfg == NimbusConfig()
    assert cfg.api == ApiConfig(listen="127.0.0.1", port=8774)
    assert cfg.rpc.timeout == 30.0
    assert cfg.transport.kind == "local"
    assert cfg.transport.broker_url == "tcp://127.0.0.1:5570"
    assert cfg.transport.run_broker is False
    assert cfg.runtime.kind == "asyncio"
    assert cfg.runtime.seed is None
    assert cfg.serve.services == ("api", "identity", "image", "placement", "scheduler",
                                  "conductor", "compute")
    assert cfg.compute.fake_hosts is None  # 3 for this all-in-one list, else 0
    assert cfg.serve.host == socket.gethostname()
    assert cfg.log.level == "INFO"


def test_file_values(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[api]
listen = "0.0.0.0"
port = 9000
[serve]
services = ["api", "queue"]
host = "node1"
[transport]
kind = "zmq"
run_broker = true
[runtime]
seed = 7
[rpc]
timeout = 5
""",
    )
    cfg = load_config(path, {}, [])
    assert (cfg.api.listen, cfg.api.port) == ("0.0.0.0", 9000)
    assert cfg.serve.services == ("api", "queue")
    assert cfg.serve.host == "node1"
    assert (cfg.transport.kind, cfg.transport.run_broker) == ("zmq", True)
    assert cfg.runtime.seed == 7
    assert cfg.rpc.timeout == 5.0


def test_precedence_cli_over_env_over_file_over_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "[api]\nport = 9000\nlisten = '10.0.0.1'\nmax_body_bytes = 10\n")
    env = {"NIMBUS_API__PORT": "9100", "NIMBUS_API__LISTEN": "10.0.0.2"}
    cfg = load_config(path, env, ["api.port=9200"])
    assert cfg.api.port == 9200  # --set beats env and file
    assert cfg.api.listen == "10.0.0.2"  # env beats file
    assert cfg.api.max_body_bytes == 10  # file beats default
    assert cfg.rpc.timeout == 30.0  # default


def test_later_overrides_win() -> None:
    cfg = load_config(None, {}, ["api.port=1", Override("api.port", "2", "--listen :2")])
    assert cfg.api.port == 2


def test_strings_are_converted_to_field_types() -> None:
    env = {
        "NIMBUS_SERVE__SERVICES": "api, queue,",
        "NIMBUS_TRANSPORT__RUN_BROKER": "yes",
        "NIMBUS_RPC__TIMEOUT": "2.5",
        "NIMBUS_RUNTIME__SEED": "42",
        "NIMBUS_API__MAX_BODY_BYTES": "2048",
    }
    cfg = load_config(None, env, [])
    assert cfg.serve.services == ("api", "queue")
    assert cfg.transport.run_broker is True
    assert cfg.rpc.timeout == 2.5
    assert cfg.runtime.seed == 42
    assert cfg.api.max_body_bytes == 2048
    assert load_config(None, {}, ["runtime.seed=none"]).runtime.seed is None
    assert load_config(None, {}, ["transport.run_broker=false"]).transport.run_broker is False


def test_unrelated_environment_is_ignored() -> None:
    cfg = load_config(None, {"NIMBUS_CONFIG": "x.toml", "PATH": "/bin", "NIMBUSX__A": "1"}, [])
    assert cfg == NimbusConfig()


def test_unknown_key_in_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[api]\nprot = 1\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, {}, [])
    assert str(err.value) == (
        f"config file {path}: [api] unknown key 'prot' "
        "(valid: listen, max_body_bytes, port, public_url)"
    )


def test_unknown_key_in_env_and_set() -> None:
    with pytest.raises(ConfigError, match=r"^NIMBUS_API__PROT: \[api\] unknown key 'prot'"):
        load_config(None, {"NIMBUS_API__PROT": "1"}, [])
    with pytest.raises(ConfigError, match=r"^--set api\.prot=1: \[api\] unknown key 'prot'"):
        load_config(None, {}, ["api.prot=1"])


def test_unknown_section(tmp_path: Path) -> None:
    path = write(tmp_path, "[apx]\nport = 1\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, {}, [])
    assert str(err.value) == (
        f"config file {path}: unknown section [apx] "
        f"(valid: {', '.join(sorted(f.name for f in dataclasses.fields(NimbusConfig)))})"
    )
    assert "(valid: api, compute, conductor, database, " in str(err.value)
    with pytest.raises(ConfigError, match=r"^NIMBUS_APX__PORT: unknown section 'apx'"):
        load_config(None, {"NIMBUS_APX__PORT": "1"}, [])
    with pytest.raises(ConfigError, match=r"^--set apx\.port=1: unknown section 'apx'"):
        load_config(None, {}, ["apx.port=1"])


def test_wrong_type_names_key_and_source(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, {"NIMBUS_API__PORT": "abc"}, [])
    assert str(err.value) == "NIMBUS_API__PORT: expected int, got 'abc'"

    path = write(tmp_path, '[api]\nport = "abc"\n')
    with pytest.raises(ConfigError) as err:
        load_config(path, {}, [])
    assert str(err.value) == f"config file {path}: [api] port: expected int, got 'abc'"

    with pytest.raises(ConfigError) as err:
        load_config(None, {}, ["transport.run_broker=maybe"])
    assert str(err.value) == "--set transport.run_broker=maybe: expected bool, got 'maybe'"

    with pytest.raises(ConfigError, match="expected int or none, got 'x'"):
        load_config(None, {"NIMBUS_RUNTIME__SEED": "x"}, [])


def test_file_bool_is_not_an_int(tmp_path: Path) -> None:
    path = write(tmp_path, "[api]\nport = true\n")
    with pytest.raises(ConfigError, match=r"\[api\] port: expected int, got True"):
        load_config(path, {}, [])


def test_range_checks() -> None:
    with pytest.raises(ConfigError, match=r"^--set api\.port=70000: expected a port number"):
        load_config(None, {}, ["api.port=70000"])
    with pytest.raises(ConfigError, match=r"^NIMBUS_RPC__TIMEOUT: expected a positive"):
        load_config(None, {"NIMBUS_RPC__TIMEOUT": "0"}, [])
    with pytest.raises(ConfigError, match=r"unknown log level 'loud' \(valid: CRITICAL, DEBUG"):
        load_config(None, {}, ["log.level=loud"])


def test_malformed_set_and_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^--set apiport: expected SECTION\.KEY=VALUE$"):
        load_config(None, {}, ["apiport"])
    with pytest.raises(ConfigError, match=r"config file .*missing\.toml: cannot read"):
        load_config(str(tmp_path / "missing.toml"), {}, [])
    with pytest.raises(ConfigError, match=r"config file .*: invalid TOML"):
        load_config(write(tmp_path, "[api\n"), {}, [])
    with pytest.raises(ConfigError, match=r"'port' is outside any \[section\] table"):
        load_config(write(tmp_path, "port = 1\n"), {}, [])


def test_sections_are_frozen() -> None:
    cfg = load_config(None, {}, [])
    with pytest.raises(AttributeError):
        cfg.api.port = 1  # type: ignore[misc]
