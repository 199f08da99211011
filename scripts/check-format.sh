#!/usr/bin/env bash
# check-format.sh [SOURCE_DIR]: fails if any of our C files differs from what clang-format
# (with the checked-in .clang-format) would write. Third-party code (llhttp, under /usr) and
# fuzz corpora are never checked. Fix with: clang-format -i FILE...
set -euo pipefail
cd "${1:-$(dirname "$0")/..}"

command -v clang-format >/dev/null || {
    echo "check-format: clang-format not found (bash scripts/install-deps.sh --test)" >&2
    exit 1
}
mapfile -d '' files < <(find signer providers proxy bench tests -type f \( -name '*.c' -o -name '*.h' \) \
    -not -path 'tests/fuzz/corpus/*' -print0 2>/dev/null | sort -z)
if [ ${#files[@]} -eq 0 ]; then
    echo "check-format: no C files found under $(pwd)" >&2
    exit 1
fi
if clang-format --dry-run -Werror "${files[@]}"; then
    echo "check-format: ${#files[@]} files formatted"
else
    echo "check-format: the files above need clang-format -i" >&2
    exit 1
fi
