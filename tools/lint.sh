#!/usr/bin/env bash
# Lint and format checks, as CI runs them: ruff (lint and format, configured in
# pyproject.toml) over the Python and clang-format (.clang-format) over the C++.
# `tools/lint.sh --fix` rewrites the files instead of checking them.
set -euo pipefail
cd "$(dirname "$0")/.."
# The C++ sources git tracks, and new ones it does not ignore.
mapfile -t cxx < <(git ls-files --cached --others --exclude-standard '*.cpp' '*.hpp')
if [[ "${1:-}" == "--fix" ]]; then
  ruff check --fix python tests bench tools
  ruff format python tests bench tools
  clang-format -i "${cxx[@]}"
else
  ruff check python tests bench tools
  ruff format --check python tests bench tools
  clang-format --dry-run -Werror "${cxx[@]}"
fi
