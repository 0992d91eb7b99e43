"""The README's commands stay true: CI runs exactly the README's test command."""

from __future__ import annotations

import re

from conftest import REPO


def _commands(text: str) -> list[str]:
    return re.findall(r"```bash\n(.+?)\n```", text)


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    demo_cmd, test_cmd = _commands(readme)[:2]
    assert "ptydask demo" in demo_cmd
    assert "pytest" in test_cmd
    ci_lines = [line.strip() for line in ci.splitlines() if line.strip() and not line.startswith("#")]
    assert test_cmd.strip() in ci_lines
