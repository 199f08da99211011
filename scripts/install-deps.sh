#!/usr/bin/env bash
# install-deps.sh [--test]: installs, from Debian 12's packages, whatever sigv4d needs that this
# machine lacks. Build dependencies always; with --test also what the test suite and the lints
# use. Runs as root (or through sudo when available). Quick and silent when everything is
# already present: apt-get runs only for missing packages.
set -euo pipefail

build_pkgs=(build-essential cmake pkg-config libevent-dev libssl-dev libyaml-dev libxml2-dev
    node-llhttp libcmocka-dev)
# libclang-rt-14-dev holds libFuzzer and clang's sanitizer runtimes; clang only recommends it,
# and we install without recommends.
test_pkgs=(python3 python3-pytest python3-botocore curl awscli openssl clang libclang-rt-14-dev
    clang-format nginx-light wrk procps)

want=("${build_pkgs[@]}")
case "${1:-}" in
--test) want+=("${test_pkgs[@]}") ;;
"") ;;
*)
    echo "usage: $0 [--test]" >&2
    exit 2
    ;;
esac

missing=()
for p in "${want[@]}"; do
    # "install ok installed" is the only state in which the package is usable.
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all ${#want[@]} packages present"
    exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || {
        echo "install-deps: not root and no sudo; install as root: ${missing[*]}" >&2
        exit 1
    }
    sudo=(sudo)
fi
# No prompts: CI has no standard input. Passed through env because sudo resets the environment.
apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q)
"${apt[@]}" update
"${apt[@]}" install -y --no-install-recommends "${missing[@]}"
