"""docs/SIMULATOR.md keeps up with the profiles: its endpoint table names every one of them."""

from __future__ import annotations

from pathlib import Path

from sidestep.sim.profile import all_profiles

SIMULATOR_MD = Path(__file__).resolve().parents[2] / "docs" / "SIMULATOR.md"
HEADER = ["platform", "method", "path", "official documentation"]


def endpoint_rows() -> list[list[str]]:
    """The cells of each row of the table under "## Simulated endpoints", header first."""
    text = SIMULATOR_MD.read_text(encoding="utf-8")
    section = text.split("\n## Simulated endpoints\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split(" | ")])
    return rows


def test_the_endpoint_table_has_a_platform_method_path_and_documentation_column() -> None:
    header, *rows = endpoint_rows()
    assert header == HEADER
    assert rows and all(len(row) == len(HEADER) for row in rows), [
        row for row in rows if len(row) != len(HEADER)]


def test_every_profile_has_a_row_in_the_endpoint_table() -> None:
    documented = {row[0].strip("`") for row in endpoint_rows()[1:]}
    assert sorted(set(all_profiles()) - documented) == []


def test_every_row_of_the_endpoint_table_names_a_profile() -> None:
    documented = {row[0].strip("`") for row in endpoint_rows()[1:]}
    assert sorted(documented - set(all_profiles())) == []
