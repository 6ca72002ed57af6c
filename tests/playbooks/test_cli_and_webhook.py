"""`sidestep playbook validate` and the webhook's refusal of private addresses."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from sidestep.cli import app
from sidestep.playbooks.netguard import PrivateAddress, check_public_url

STARTER = Path(__file__).parents[2] / "src/sidestep/playbooks/starter"


def test_validate_accepts_the_starter_pack_and_names_the_line_of_a_mistake(
        tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\ntitle = "t"\n[[trigger]]\nkind = "platform"\nfor = "soon"\n'
                   '[[action]]\ndo = "hold"\n', encoding="utf-8")
    runner = CliRunner()
    good = runner.invoke(app, ["playbook", "validate", *map(str, STARTER.glob("*.toml"))])
    assert good.exit_code == 0 and good.output.count("✓") == 4
    result = runner.invoke(app, ["playbook", "validate", str(bad)])
    assert result.exit_code == 2
    assert "bad.toml:5: trigger[0].for" in result.output.replace("\n", " ")


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8000/hook", "https://10.1.2.3/x", "http://[::1]/x",
    "http://169.254.169.254/latest/meta-data", "http://localhost/x",
    "http://[::ffff:192.168.0.1]/x", "ftp://example.org/x",
])
async def test_webhooks_to_private_or_special_addresses_are_refused(url: str) -> None:
    with pytest.raises(PrivateAddress):
        await check_public_url(url)


async def test_a_public_address_is_allowed() -> None:
    assert await check_public_url("https://93.184.215.14/hook") == "93.184.215.14"
