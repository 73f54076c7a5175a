"""``nimbus policy`` and the ``[policy] file`` option."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from nimbus.cli import main
from nimbus.config import PolicySection, load_config, load_policy
from nimbus.core.context import RequestContext
from nimbus.core.errors import ConfigError
from nimbus.core.policy import DEFAULT_POLICY, DEFAULTS

MEMBER = RequestContext("u", "p", "r", ("member", "reader"))


def test_sample_lists_every_rule_commented_out(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "sample"]) == 0
    text = capsys.readouterr().out
    assert yaml.safe_load(text) is None  # all commented out: changes nothing as it is
    uncommented = "\n".join(line[1:] for line in text.splitlines() if line.startswith('#"'))
    assert yaml.safe_load(uncommented) == {r.name: r.check for r in DEFAULTS}


def test_check_prints_what_differs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text('"os_compute_api:os-services:list": "role:reader"\n'
                    '"os_compute_api:servers:create": "rule:project_member_or_admin"\n')
    assert main(["policy", "check", str(path)]) == 0
    out = capsys.readouterr().out
    assert '"os_compute_api:os-services:list": "role:reader"' in out
    assert "1 rule(s) differ" in out


@pytest.mark.parametrize(("text", "problem"), [
    ('"x": "rule:nope"\n', "'nope' is not defined"),
    ('"x": "role:admin and"\n', "ends too early"),
    ("- a list\n", "mapping of rule names"),
    ('"x": [1]\n', "must be a check string"),
    ("{unclosed\n", "policy.yaml"),
])
def test_check_refuses_bad_files(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                 text: str, problem: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    assert main(["policy", "check", str(path)]) == 2
    assert problem in capsys.readouterr().err


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nothere\.yaml"):
        load_policy(PolicySection(file=str(tmp_path / "nothere.yaml")))


def test_the_policy_section_loads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.json"
    path.write_text('{"os_compute_api:servers:create": "role:admin"}')
    config = load_config(None, {}, [f"policy.file={path}"])
    policy = load_policy(config.policy)
    assert not policy.allows("os_compute_api:servers:create", MEMBER)
    assert DEFAULT_POLICY.allows("os_compute_api:servers:create", MEMBER)
    assert load_policy(load_config(None, {}, []).policy) is DEFAULT_POLICY
