"""``/os-keypairs``: import, generate, list, show, delete, per-user isolation, quota."""

from __future__ import annotations

import base64
import hashlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from nimbus.core.api.compute.keypairs import generate_x509
from tests.core.api.compute.harness import ADMIN_TOKEN, OTHER, USER, Api, run


def ed25519_public() -> str:
    """An OpenSSH ed25519 public key, as the CLI generates and posts one."""
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(serialization.Encoding.OpenSSH,
                            serialization.PublicFormat.OpenSSH).decode() + " me@host"


def md5_fingerprint(public_key: str) -> str:
    raw = hashlib.md5(base64.b64decode(public_key.split()[1]), usedforsecurity=False).hexdigest()
    return ":".join(raw[i:i + 2] for i in range(0, 32, 2))


def test_import_as_the_cli_does_then_show_list_delete() -> None:
    async def scenario(api: Api) -> None:
        public = ed25519_public()
        got = await api.post("/os-keypairs", {"keypair": {"name": "k1", "public_key": public}},
                             version="2.10")
        assert got.status == 201, got.body
        assert got.body["keypair"] == {"name": "k1", "public_key": public, "type": "ssh",
                                       "fingerprint": md5_fingerprint(public), "user_id": "u1"}
        shown = (await api.get("/os-keypairs/k1", version="2.10")).body["keypair"]
        assert shown["deleted"] is False and shown["user_id"] == "u1"
        assert isinstance(shown["id"], int) and shown["created_at"].startswith("20")
        listed = await api.get("/os-keypairs", version="2.10")
        assert listed.body == {"keypairs": [{"keypair": {
            "name": "k1", "public_key": public, "fingerprint": md5_fingerprint(public),
            "type": "ssh"}}]}
        assert (await api.delete("/os-keypairs/k1", version="2.10")).status == 204
        gone = await api.get("/os-keypairs/k1", version="2.10")
        assert gone.status == 404
        assert gone.body["itemNotFound"]["message"] == "Keypair k1 not found for user u1"

    run(scenario)


def test_generation_before_2_92_and_refused_from_it() -> None:
    async def scenario(api: Api) -> None:
        got = await api.post("/os-keypairs", {"keypair": {"name": "gen"}})
        assert got.status == 200
        pair = got.body["keypair"]
        assert pair["private_key"].startswith("-----BEGIN RSA PRIVATE KEY-----")
        assert pair["public_key"].startswith("ssh-rsa ")
        assert pair["public_key"].endswith(" Generated-by-Nova")
        assert pair["fingerprint"] == md5_fingerprint(pair["public_key"])
        assert "type" not in pair
        assert (await api.delete("/os-keypairs/gen")).status == 202
        refused = await api.post("/os-keypairs", {"keypair": {"name": "gen2"}}, version="2.92")
        assert refused.status == 400

    run(scenario)


def test_x509_import_and_generation() -> None:
    async def scenario(api: Api) -> None:
        _, cert, fingerprint = generate_x509("u1", 1.8e9)
        got = await api.post("/os-keypairs", {"keypair": {
            "name": "cert", "public_key": cert, "type": "x509"}}, version="2.2")
        assert got.status == 201 and got.body["keypair"]["fingerprint"] == fingerprint
        made = await api.post("/os-keypairs", {"keypair": {"name": "made", "type": "x509"}},
                              version="2.2")
        assert made.status == 201
        assert made.body["keypair"]["public_key"].startswith("-----BEGIN CERTIFICATE-----")
        assert len(made.body["keypair"]["fingerprint"]) == 59  # 20 bytes, colon hex
        bad = await api.post("/os-keypairs", {"keypair": {
            "name": "bad", "public_key": "junk", "type": "x509"}}, version="2.2")
        assert bad.status == 400
        # the type field only exists from 2.2
        assert (await api.post("/os-keypairs", {"keypair": {
            "name": "t", "public_key": cert, "type": "x509"}})).status == 400

    run(scenario)


def test_bad_input_is_400_and_duplicates_409() -> None:
    async def scenario(api: Api) -> None:
        public = ed25519_public()
        for body in ({"keypair": {"name": "k", "public_key": "ssh-rsa notbase64"}},
                     {"keypair": {"name": "a@b", "public_key": public}},
                     {"keypair": {"name": "x" * 256, "public_key": public}},
                     {"keypair": {"name": "", "public_key": public}},
                     {"keypair": {"public_key": public}},
                     {"keypair": {"name": "k", "public_key": public, "colour": "red"}}):
            got = await api.post("/os-keypairs", body, version="2.10")
            assert got.status == 400, body
        assert got.body["badRequest"]["message"]
        invalid = await api.post("/os-keypairs", {"keypair": {
            "name": "k", "public_key": "ssh-rsa AAAA"}}, version="2.10")
        assert invalid.body["badRequest"]["message"] == (
            "Keypair data is invalid: failed to generate fingerprint")
        # '@' and '.' are allowed from 2.92
        ok = await api.post("/os-keypairs", {"keypair": {"name": "me@host.x",
                                                         "public_key": public}}, version="2.92")
        assert ok.status == 201
        dup = await api.post("/os-keypairs", {"keypair": {"name": "me@host.x",
                                                          "public_key": public}}, version="2.92")
        assert dup.status == 409
        assert dup.body["conflictingRequest"]["message"] == "Key pair 'me@host.x' already exists."

    run(scenario)


def test_keypairs_are_per_user() -> None:
    async def scenario(api: Api) -> None:
        public = ed25519_public()
        await api.post("/os-keypairs", {"keypair": {"name": "mine", "public_key": public}},
                       version="2.10")
        assert (await api.get("/os-keypairs/mine", token=OTHER, version="2.10")).status == 404
        assert (await api.get("/os-keypairs", token=OTHER)).body == {"keypairs": []}
        assert (await api.delete("/os-keypairs/mine", token=OTHER)).status == 404
        # naming another user is for admins (2.10+)
        spy = await api.get("/os-keypairs", token=OTHER, query={"user_id": "u1"},
                            version="2.10")
        assert spy.status == 403
        plant = await api.post("/os-keypairs", {"keypair": {
            "name": "gift", "public_key": public, "user_id": "u1"}}, token=OTHER,
            version="2.10")
        assert plant.status == 403
        admin = await api.get("/os-keypairs", token=ADMIN_TOKEN, query={"user_id": "u1"},
                              version="2.10")
        assert [k["keypair"]["name"] for k in admin.body["keypairs"]] == ["mine"]
        # before 2.10 the user_id query is ignored: the admin sees their own (none)
        old = await api.get("/os-keypairs", token=ADMIN_TOKEN, query={"user_id": "u1"},
                            version="2.9")
        assert old.body == {"keypairs": []}
        made = await api.post("/os-keypairs", {"keypair": {
            "name": "for-u2", "public_key": public, "user_id": "u2"}}, token=ADMIN_TOKEN,
            version="2.10")
        assert made.status == 201 and made.body["keypair"]["user_id"] == "u2"
        assert (await api.get("/os-keypairs/for-u2", token=OTHER)).status == 200
        removed = await api.delete("/os-keypairs/mine", token=ADMIN_TOKEN,
                                   query={"user_id": "u1"}, version="2.10")
        assert removed.status == 204
        assert (await api.get("/os-keypairs/mine", token=USER)).status == 404

    run(scenario)


def test_paging_from_2_35_and_strict_query_from_2_75() -> None:
    async def scenario(api: Api) -> None:
        for name in ("a", "b", "c"):
            await api.post("/os-keypairs", {"keypair": {"name": name,
                                                        "public_key": ed25519_public()}},
                           version="2.10")
        page = await api.get("/os-keypairs", query={"limit": "2"}, version="2.35")
        assert [k["keypair"]["name"] for k in page.body["keypairs"]] == ["a", "b"]
        assert "marker=b" in page.body["keypairs_links"][0]["href"]
        rest = await api.get("/os-keypairs", query={"limit": "2", "marker": "b"},
                             version="2.35")
        assert [k["keypair"]["name"] for k in rest.body["keypairs"]] == ["c"]
        # before 2.35 limit is not a parameter: everything comes back
        old = await api.get("/os-keypairs", query={"limit": "2"}, version="2.34")
        assert len(old.body["keypairs"]) == 3 and "keypairs_links" not in old.body
        assert (await api.get("/os-keypairs", query={"marker": "zz"},
                              version="2.35")).status == 400
        assert (await api.get("/os-keypairs", query={"sort": "x"}, version="2.75")).status == 400

    run(scenario)


def test_key_pairs_quota_is_403_when_full() -> None:
    async def scenario(api: Api) -> None:
        set_quota = await api.put("/os-quota-sets/p1", {"quota_set": {"key_pairs": 1}},
                                  token=ADMIN_TOKEN)
        assert set_quota.status == 200
        first = await api.post("/os-keypairs", {"keypair": {"name": "one",
                                                            "public_key": ed25519_public()}})
        assert first.status == 200
        second = await api.post("/os-keypairs", {"keypair": {"name": "two",
                                                             "public_key": ed25519_public()}})
        assert second.status == 403
        assert second.body["forbidden"]["message"] == "Quota exceeded, too many key pairs."

    run(scenario)
