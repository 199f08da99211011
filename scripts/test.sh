#!/usr/bin/env bash
# test.sh: installs what the tests need, then builds and runs every test, in three builds:
#   build/       Release; all of ctest (unit, vectors, differential, integration, lint)
#   build-asan/  AddressSanitizer + UndefinedBehaviorSanitizer; ctest -L unit, then
#                ctest -L integration (all of it, the 1 GiB transfers included: about a
#                minute under ASan on 2 cores; the harness fails a test on any sanitizer
#                report, leaks at exit included, and allows the sanitizers' extra RSS)
#   build-fuzz/  clang with -DSIGV4D_FUZZ=ON; ctest -L fuzz (short libFuzzer runs: each target
#                SIGV4D_FUZZ_SECONDS, 30 here, two at a time, so three targets take about 60 s)
# plus Python tests that no CTest test runs (pytest). Goes on after a failing stage so one run
# shows every failure; exits non-zero if any stage failed, after a summary.
# SIGV4D_TEST_STAGES="build asan fuzz python" (the default) selects stages while developing.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

PY=/usr/bin/python3 # Debian's: the python3 first on PATH may not see python3-botocore
CTEST_TIMEOUT_S=${SIGV4D_CTEST_TIMEOUT_S:-900} # per test, unless the test sets its own

stages=" ${SIGV4D_TEST_STAGES:-build asan fuzz python} "
want() { [[ $stages == *" $1 "* ]]; }

bash scripts/install-deps.sh --test || {
    echo "test.sh: installing dependencies failed" >&2
    exit 1
}

total_pass=0
total_fail=0
summary=()

note() { summary+=("$(printf '%-28s %s' "$1" "$2")"); }
banner() { printf '\n==== %s ====\n' "$*"; }

# ctest_stage NAME BUILD_DIR LABEL_ARGS...: runs ctest and adds its counts to the totals.
ctest_stage() {
    local name=$1 dir=$2
    shift 2
    local log="$dir/test.sh-ctest.log"
    banner "$name: ctest $*"
    (cd "$dir" && ctest --output-on-failure --timeout "$CTEST_TIMEOUT_S" "$@") 2>&1 | tee "$log"
    local rc=${PIPESTATUS[0]}
    # CTest's closing line: "100% tests passed, 0 tests failed out of 12".
    local line
    line=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1)
    if [ -n "$line" ]; then
        local failed total
        failed=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")
        total=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\2/' <<<"$line")
        total_pass=$((total_pass + total - failed))
        total_fail=$((total_fail + failed))
        if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
            total_fail=$((total_fail + 1))
            note "$name" "ctest exited $rc with no failed test (see above): FAILED"
        else
            note "$name" "$((total - failed)) passed, $failed failed"
        fi
    elif grep -q 'No tests were found' "$log"; then
        # Not a failure (nothing of this kind exists yet), and not counted as a pass either.
        note "$name" "no tests with this label yet"
    else
        total_fail=$((total_fail + 1))
        note "$name" "ctest exited $rc without a result line: FAILED"
    fi
}

# build_stage NAME DIR CMAKE_ARGS...: configures and builds; on failure counts one failure.
build_stage() {
    local name=$1 dir=$2
    shift 2
    banner "$name: configure and build $dir"
    if cmake -S "$root" -B "$dir" "$@" && cmake --build "$dir" -j2; then
        return 0
    fi
    total_fail=$((total_fail + 1))
    note "$name" "configure/build FAILED"
    return 1
}

if want build && build_stage "build (Release)" build -DCMAKE_BUILD_TYPE=Release; then
    ctest_stage "build: all tests" build
fi

if want asan && build_stage "build-asan" build-asan -DSIGV4D_SANITIZE=address,undefined; then
    ctest_stage "build-asan: unit tests" build-asan -L unit
    ctest_stage "build-asan: integration tests" build-asan -L integration
fi

if ! want fuzz; then
    :
elif command -v clang >/dev/null; then
    # CI's budget for this stage is about 90 s: each target runs 30 s (60 when built by
    # hand), two at once on the 2 cores. SIGV4D_FUZZ_SECONDS in the environment overrides.
    if CC=clang build_stage "build-fuzz (clang)" build-fuzz -DSIGV4D_FUZZ=ON \
        -DSIGV4D_FUZZ_SECONDS="${SIGV4D_FUZZ_SECONDS:-30}"; then
        ctest_stage "build-fuzz: fuzz tests" build-fuzz -L fuzz -j2
    fi
else
    total_fail=$((total_fail + 1))
    note "build-fuzz" "clang not found: FAILED"
fi

# Prints the Python test files given as arguments that no CTest test in build/ runs: a file
# counts as run by CTest when a registered test invokes pytest, or names the file or its
# folder in its command or working directory.
python_tests_outside_ctest() {
    (cd build 2>/dev/null && ctest --show-only=json-v1 2>/dev/null) | "$PY" -c '
import json, os, sys
try:
    tests = json.load(sys.stdin).get("tests", [])
except ValueError:
    tests = []
words = []
for t in tests:
    words += t.get("command") or []
    for prop in t.get("properties", []):
        if prop.get("name") == "WORKING_DIRECTORY":
            words.append(str(prop.get("value")))
text = " ".join(words)
for f in sys.argv[1:]:
    full = os.path.abspath(f)
    if "pytest" not in text and full not in text and os.path.dirname(full) not in text:
        print(f)
' "$@"
}

# Python tests are normally CTest tests (they then ran above); any others are run here, so
# none is silently left out. pytest exits 5 when it collects nothing: with test files present
# that is a failure, never a pass.
python_stage() {
    local name="python (outside ctest)" py_tests uncovered
    banner "$name"
    mapfile -t py_tests < <(find tests -type f \( -name 'test_*.py' -o -name '*_test.py' \) \
        -not -path '*/__pycache__/*' | sort)
    if [ ${#py_tests[@]} -eq 0 ]; then
        echo "no Python test files in tests/"
        note "$name" "no Python test files"
        return
    fi
    mapfile -t uncovered < <(python_tests_outside_ctest "${py_tests[@]}")
    if [ ${#uncovered[@]} -eq 0 ]; then
        echo "${#py_tests[@]} Python test files, all run by CTest above"
        note "$name" "all run by ctest above"
        return
    fi
    local log=build/test.sh-pytest.log rc p=0 f=0 n last
    mkdir -p build
    PYTHONDONTWRITEBYTECODE=1 "$PY" -m pytest -q -p no:cacheprovider "${uncovered[@]}" 2>&1 |
        tee "$log"
    rc=${PIPESTATUS[0]}
    # pytest's closing line: "3 passed, 1 failed, 2 errors in 0.52s".
    last=$(grep -E '(passed|failed|error|no tests ran)' "$log" | tail -n 1)
    for n in $(grep -oE '[0-9]+ passed' <<<"$last" | grep -oE '[0-9]+'); do p=$((p + n)); done
    for n in $(grep -oE '[0-9]+ (failed|errors?)' <<<"$last" | grep -oE '[0-9]+'); do
        f=$((f + n))
    done
    total_pass=$((total_pass + p))
    if [ "$rc" -eq 5 ]; then
        total_fail=$((total_fail + 1))
        note "$name" "pytest collected no tests from ${#uncovered[@]} files: FAILED"
    elif [ "$rc" -ne 0 ]; then
        [ "$f" -gt 0 ] || f=1
        total_fail=$((total_fail + f))
        note "$name" "$p passed, $f failed (pytest exit $rc)"
    else
        note "$name" "$p passed, 0 failed"
    fi
}
want python && python_stage

banner "summary"
printf '%s\n' "${summary[@]}"
if [ "$total_fail" -ne 0 ]; then
    echo "test.sh: FAILED" >&2
fi
echo "total: $total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
