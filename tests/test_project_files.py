"""The README's commands, CI and the environment files agree with each other."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def requirement_lines(text: str) -> list[str]:
    return [line.split("#")[0].strip() for line in text.splitlines() if line.split("#")[0].strip()]


def test_environment_yml_mirrors_requirements_txt():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    assert any(str(d).replace(" ", "").startswith("python=3.11") for d in deps if isinstance(d, str))
    pip = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    assert sorted(pip) == sorted(requirement_lines((ROOT / "requirements.txt").read_text())), \
        "environment.yml's pip section must list exactly requirements.txt"


def test_ci_runs_make_test():
    script = (ROOT / ".ci" / "run").read_text()
    assert script.startswith("#!/usr/bin/env bash")
    assert "set -euo pipefail" in script
    assert re.search(r"^\s*make test\b", script, re.M)


def test_makefile_targets_exist():
    out = subprocess.run(["make", "-n", "-C", str(ROOT), "book", "test", "clean"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "faceedit_nb.book --profile" in out.stdout and "--nbval-lax" in out.stdout


def test_readme_leads_with_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    head = readme[: readme.find("\n## ", readme.find("make test"))]
    assert "make book" in head and "make test" in head
    assert "https://colab.research.google.com/github/faceedit-nb/faceedit-nb/blob/main/notebooks/" in readme
