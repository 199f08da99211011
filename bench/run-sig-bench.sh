#!/usr/bin/env bash
# run-sig-bench.sh: builds sig_bench in build/ (Release) and prints, in one run, sigv4d's
# signer next to botocore for the same requests at the same fixed time: signatures per
# second, ns per signature, the bare SHA-256 time of the bytes each signature hashes, heap
# allocations per signature, and the speedup over botocore. Fails if the two implementations
# produce different signatures or if signing allocates.
# A benchmark, not a test: run it on a quiet machine (other load on the cores skews it).
set -euo pipefail
cd "$(dirname "$0")/.."

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j2 --target sig_bench >/dev/null
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "== sigv4d signer (bench/sig_bench.c): $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
# taskset keeps the signer on one core when it exists; the numbers are single-threaded anyway.
if command -v taskset >/dev/null; then pin=(taskset -c 0); else pin=(); fi
"${pin[@]}" build/bench/sig_bench | tee "$out/c.txt" | grep -v '^result'
echo
echo "== botocore (bench/botocore_bench.py)"
"${pin[@]}" /usr/bin/python3 bench/botocore_bench.py | tee "$out/py.txt" | grep -v '^result'
echo

# Join the two on the request name.
status=0
echo "== sigv4d vs botocore"
printf '%-18s %12s %12s %9s %9s %s\n' request "sigv4d sig/s" "boto sig/s" speedup "sig/sha" "signatures"
while IFS=$'\t' read -r _ _ name c_rate c_ns sha_ns allocs _misses c_sig; do
    line=$(grep -P "^result\tbotocore\t$name\t" "$out/py.txt") || {
        echo "no botocore result for $name" >&2
        status=1
        continue
    }
    IFS=$'\t' read -r _ _ _ p_rate p_ns p_sig <<<"$line"
    if [ "$c_sig" = "$p_sig" ]; then same="equal"; else same="DIFFER ($c_sig vs $p_sig)"; status=1; fi
    speedup=$(awk -v a="$p_ns" -v b="$c_ns" 'BEGIN { printf "%.0fx", a / b }')
    ratio=$(awk -v a="$c_ns" -v b="$sha_ns" 'BEGIN { printf "%.2f", a / b }')
    printf '%-18s %12s %12s %9s %9s %s\n' "$name" "$c_rate" "$p_rate" "$speedup" "$ratio" "$same"
    if awk -v a="$allocs" 'BEGIN { exit !(a > 0) }'; then
        echo "$name: $allocs heap allocations per signature (expected 0)" >&2
        status=1
    fi
done < <(grep -P '^result\tsigv4d\t' "$out/c.txt")
exit $status
