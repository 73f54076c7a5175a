"""Passwords (argon2id) and Fernet tokens, on their own."""

from __future__ import annotations

import pytest

from nimbus.core.errors import ConfigError
from nimbus.core.identity.passwords import Passwords
from nimbus.core.identity.tokens import (
    FernetTokens,
    InvalidToken,
    TokenPayload,
    generate_key,
    new_audit_id,
    token_hash,
)
from nimbus.runtime import AsyncioRuntime
from nimbus.sim.runtime import SimRuntime

from .conftest import cheap_passwords


def test_passwords_hash_and_verify_off_the_loop() -> None:
    rt = AsyncioRuntime(seed=1)

    async def main() -> None:
        pw = cheap_passwords(rt)
        hashed = await pw.hash("s3cret")
        assert hashed.startswith("$argon2id$v=19$m=1024,t=1,p=1$")
        assert await pw.verify(hashed, "s3cret")
        assert not await pw.verify(hashed, "wrong")
        assert not await pw.verify(None, "s3cret")
        assert not await pw.verify("not a hash", "s3cret")
        assert not pw.needs_rehash(hashed)
        # a stronger policy reads old hashes and asks for a new one
        stronger = Passwords(rt, time_cost=2, memory_kib=2048)
        assert await stronger.verify(hashed, "s3cret")
        assert stronger.needs_rehash(hashed)
        await pw.burn("anything")

    rt.run(main())


def test_default_cost_is_argon2id_8mib() -> None:
    rt = SimRuntime(0)

    async def main() -> str:
        return await Passwords(rt).hash("x")

    assert rt.run(main()).startswith("$argon2id$v=19$m=8192,t=2,p=1$")


def _payload(**kw: object) -> TokenPayload:
    values: dict[str, object] = dict(
        user_id="u" * 32, methods=("password",), project_id="p" * 32, domain_id=None,
        issued_at=1000.5, expires_at=4600.5, audit_ids=("a" * 22,))
    values.update(kw)
    return TokenPayload(**values)  # type: ignore[arg-type]


def test_token_round_trip_expiry_and_forgery() -> None:
    key = generate_key()
    tokens = FernetTokens([key])
    payload = _payload()
    token = tokens.issue(payload)
    assert isinstance(token, str) and len(token) < 400
    assert tokens.read(token, 1001.0) == payload
    with pytest.raises(InvalidToken, match="requires authentication") as err:
        tokens.read(token, 4600.5)
    assert err.value.why == "token expired"
    with pytest.raises(InvalidToken):
        FernetTokens([generate_key()]).read(token, 1001.0)
    with pytest.raises(InvalidToken):
        tokens.read(token[:-4] + "AAAA", 1001.0)
    with pytest.raises(InvalidToken):
        tokens.read("not-a-token", 1001.0)
    with pytest.raises(InvalidToken):
        tokens.read("tøken", 1001.0)
    # stamped far in the future: Fernet's clock-skew check refuses it
    with pytest.raises(InvalidToken):
        tokens.read(tokens.issue(_payload(issued_at=9000.0, expires_at=9999.0)), 1001.0)


def test_key_rotation_first_key_signs_all_keys_verify() -> None:
    old, new = generate_key(), generate_key()
    before = FernetTokens([old]).issue(_payload())
    rotated = FernetTokens([new, old])
    assert rotated.read(before, 1001.0).user_id == "u" * 32
    after = rotated.issue(_payload(project_id=None))
    assert FernetTokens([new]).read(after, 1001.0).unscoped
    with pytest.raises(InvalidToken):
        FernetTokens([old]).read(after, 1001.0)


def test_bad_keys_are_config_errors_without_the_key() -> None:
    with pytest.raises(ConfigError, match="at least one"):
        FernetTokens([])
    with pytest.raises(ConfigError, match="#2") as err:
        FernetTokens([generate_key(), "short-secret"])
    assert "short-secret" not in str(err.value)


def test_audit_ids_and_hashes() -> None:
    rt = SimRuntime(5)
    a, b = new_audit_id(rt), new_audit_id(rt)
    assert len(a) == 22 and a != b and "=" not in a
    assert new_audit_id(SimRuntime(5)) == a  # from the runtime: deterministic
    assert len(token_hash("tok")) == 64 and token_hash("tok") != token_hash("tok2")
