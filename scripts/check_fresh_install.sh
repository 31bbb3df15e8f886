#!/usr/bin/env bash
# A machine that has only the repository: a fresh virtual environment, `pip install` of the checkout (what
# the notebooks' install cell does when faceedit_nb is missing), then one chapter executed from a copy
# outside the repository with the smoke profile. Slow (it installs torch: minutes, ~6 GB); not part of
# `make test`, whose tests/test_book_reader.py checks the pieces (declared dependencies, the install cell).
#   bash scripts/check_fresh_install.sh [NOTEBOOK]      (default notebooks/synthfaces.ipynb)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
nb="${1:-notebooks/synthfaces.ipynb}"
work="$(mktemp -d /tmp/faceedit-fresh-XXXXXX)"
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q --disable-pip-version-check "$root" papermill ipykernel 2>&1 \
  | { grep -v -E '^WARNING: Location .* is ignored' || true; }
cp "$root/$nb" "$work/chapter.ipynb"          # outside the checkout: nothing but the installed package
cd "$work"
"$work/venv/bin/python" -c "import faceedit_nb, myst_nb, torchmetrics; print('faceedit_nb from', faceedit_nb.__file__)"
params="$("$work/venv/bin/python" - "$root" "$nb" <<'PY'
import sys, yaml, pathlib
root, nb = sys.argv[1], sys.argv[2]
name = pathlib.Path(nb).relative_to("notebooks").with_suffix("").as_posix()
smoke = (yaml.safe_load(open(f"{root}/notebooks/profiles.yml")) or {}).get(name, {}).get("smoke", {})
print(" ".join(f"-y '{k}: {v!r}'" if isinstance(v, str) else f"-y '{k}: {v}'" for k, v in smoke.items()))
PY
)"
FACEEDIT_CACHE="$work/cache" eval "$work/venv/bin/papermill" chapter.ipynb out.ipynb -k python3 --log-level ERROR $params
echo "fresh install: $nb ran in a new virtual environment with only 'pip install <checkout>'"
