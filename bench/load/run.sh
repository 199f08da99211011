#!/bin/bash
# Load benchmark: sigv4d against nginx as a plain reverse proxy, both in front of the same fast
# loopback upstream, alternating wrk rounds; then a large-body PUT through sigv4d next to this
# machine's single-core SHA-256 rate, with sigv4d's peak RSS. See bench/load/README.md.
#
# Loopback only: every address below is 127.0.0.1. Installs nothing: it names what is missing.
# Knobs (environment): SIGV4D, WORKERS, ROUNDS, DURATION, WARMUP, CONNS, THREADS, UP_WORKERS,
# PUT_BYTES, PUT_MODES, PUT_ROUNDS, PUT_WORKERS, MAX_BUFFER, VERIFY_CHUNKS, PERF, KEEP_TMP, UP_TLS.
# UP_TLS=1: the upstreams (nginx and upstream.py) serve HTTPS with a certificate for
# s3.us-east-1.amazonaws.com from a throw-away CA made here; nginx proxies with proxy_pass
# https (SNI, verification against that CA, session reuse, keep-alive pool) and sigv4d runs
# with its default https scheme, --ca-file and --connect-to ...:443. Before timing, both
# proxies must fail against a CA that signed nothing (verification is on). Default 0: plain
# HTTP upstreams, as before.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SIGV4D=${SIGV4D:-$ROOT/build/sigv4d}
WORKERS=${WORKERS:-"1 2"}   # proxy worker counts to compare; nginx gets the same count
ROUNDS=${ROUNDS:-3}         # timed rounds per proxy, alternating nginx, sigv4d, nginx, ...
DURATION=${DURATION:-10}    # seconds per timed round
WARMUP=${WARMUP:-2}         # seconds of untimed warm-up per proxy and worker count
CONNS=${CONNS:-32}          # wrk connections (keep-alive)
THREADS=${THREADS:-1}       # wrk threads
UP_WORKERS=${UP_WORKERS:-2} # worker processes of the upstream nginx
PUT_BYTES=${PUT_BYTES:-1073741824}
PUT_MODES=${PUT_MODES:-"chunked spooled unsigned"}
PUT_ROUNDS=${PUT_ROUNDS:-3}  # 1 GiB PUTs per mode; the median is compared with the target
VERIFY_CHUNKS=${VERIFY_CHUNKS:-0} # 1: upstream.py re-checks every chunk signature of the 1 GiB
PUT_WORKERS=${PUT_WORKERS:-1}
MAX_BUFFER=${MAX_BUFFER:-8M}
PERF=${PERF:-0}             # 1: one extra untimed sigv4d round under perf record, top symbols
UP_TLS=${UP_TLS:-0}         # 1: HTTPS upstreams (see the header)
PY=/usr/bin/python3         # Debian's python, which sees python3-botocore
LOGICAL_HOST=s3.us-east-1.amazonaws.com
AKID=AKIDLOADBENCH0000001

say() { printf '%s\n' "$*"; }
die() { printf 'run.sh: %s\n' "$*" >&2; exit 1; }

# ---- tools: check and name the Debian package of anything missing -------------------------
missing=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=("nginx (apt-get install nginx-light)")
command -v wrk >/dev/null || missing+=("wrk (apt-get install wrk)")
command -v curl >/dev/null || missing+=("curl (apt-get install curl)")
command -v openssl >/dev/null || missing+=("openssl (apt-get install openssl)")
if [ ! -x "$PY" ]; then
    missing+=("/usr/bin/python3 (apt-get install python3)")
elif ! "$PY" -c 'import botocore' 2>/dev/null; then
    missing+=("botocore for /usr/bin/python3 (apt-get install python3-botocore)")
fi
[ -x "$SIGV4D" ] || missing+=("sigv4d binary at $SIGV4D (build it: cmake -S . -B build && cmake --build build -j2, or set SIGV4D=)")
if [ ${#missing[@]} -gt 0 ]; then
    printf 'run.sh: missing:\n' >&2
    printf '  %s\n' "${missing[@]}" >&2
    exit 2
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

# ---- scratch space and cleanup ----------------------------------------------------------
T=$(mktemp -d /tmp/sigv4d-loadbench.XXXXXX)
chmod 755 "$T" # nginx workers may run as nobody when started by root
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [ "${KEEP_TMP:-0}" = 1 ]; then say "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stop_pid() { # stops one process this script started and forgets it
    local pid=$1 keep=() p
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    for p in "${PIDS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
    PIDS=("${keep[@]+"${keep[@]}"}")
}

# Free loopback ports, asked from the kernel (bind to port 0), released just before use.
read -r P_UP P_PY P_NGX P_SIG P_CHK < <("$PY" - <<'EOF'
import socket
socks = [socket.socket() for _ in range(5)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
)

# Throw-away credentials: the secret goes to a 0600 file and the environment, never to output.
umask 077
openssl rand -hex 20 >"$T/secret"
umask 022
SECRET=$(cat "$T/secret")

# ---- UP_TLS=1: a throw-away CA and the upstreams' certificate -----------------------------
# Made with the openssl CLI as tests/integration/sv4h/pki.py does: P-256 keys, a CA, a server
# certificate for the logical host (and 127.0.0.1, for curl straight to the upstreams), and a
# second CA that signed nothing, for the check that verification is really on.
UP_SCHEME=http
UP_CURL=() # curl arguments to reach the upstreams directly
if [ "$UP_TLS" = 1 ]; then
    UP_SCHEME=https
    mkdir -p "$T/pki"
    mk_ca() { # stem cn
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
            -keyout "$T/pki/$1.key" -out "$T/pki/$1.pem" -days 2 -subj "/CN=$2" \
            -addext basicConstraints=critical,CA:TRUE \
            -addext keyUsage=critical,keyCertSign,cRLSign >"$T/pki/openssl.log" 2>&1 ||
            die "openssl could not make the CA $1: $(cat "$T/pki/openssl.log")"
    }
    mk_ca ca "sigv4d load benchmark CA"
    mk_ca other-ca "sigv4d load benchmark unrelated CA"
    printf '%s\n' "subjectAltName=DNS:$LOGICAL_HOST,IP:127.0.0.1" \
        "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
        "extendedKeyUsage=serverAuth" >"$T/pki/server.ext"
    { openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$T/pki/server.key" -out "$T/pki/server.csr" -subj "/CN=$LOGICAL_HOST" &&
        openssl x509 -req -in "$T/pki/server.csr" -CA "$T/pki/ca.pem" -CAkey "$T/pki/ca.key" \
            -CAcreateserial -out "$T/pki/server.pem" -days 2 -extfile "$T/pki/server.ext"; } \
        >"$T/pki/openssl.log" 2>&1 || die "openssl could not make the server certificate: $(cat "$T/pki/openssl.log")"
    chmod 644 "$T/pki/server.key" # read by nginx's workers, which may run as nobody
    UP_CURL=(--cacert "$T/pki/ca.pem")
fi

wait_http() { # url [curl args]: waits (bounded, 10 s) until something answers HTTP on it
    local _
    for _ in $(seq 1 100); do
        if curl -s -o /dev/null --max-time 1 "${@:2}" "$1"; then return 0; fi
        sleep 0.1
    done
    return 1
}

# ---- the upstream: nginx answering a small fixed 200 -------------------------------------
# It answers 403 to any request without a SigV4-shaped Authorization header for our key, so
# an unsigned request can never be counted as a success. Requests carrying X-Bench-Probe are
# logged with their signing headers, so the run can show what sigv4d actually sent.
ngx_common() { # prefix: the directives both nginx instances share
    cat <<EOF
pid $T/$1.pid;
error_log $T/$1-error.log warn;
events { worker_connections 8192; }
EOF
}
ngx_http_common() {
    cat <<EOF
    access_log off;
    default_type text/plain;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    client_body_temp_path $T/$1-tmp/body;
    proxy_temp_path $T/$1-tmp/proxy;
    fastcgi_temp_path $T/$1-tmp/fastcgi;
    uwsgi_temp_path $T/$1-tmp/uwsgi;
    scgi_temp_path $T/$1-tmp/scgi;
EOF
}

# UP_TLS=1: HTTPS (HTTP/1.1 only: no http2 on the listen line, and nginx 1.22 offers no h2
# over ALPN without it), TLS 1.2 and 1.3, a shared session cache (and tickets, on by default)
# so both proxies can resume. The probe log then also shows the TLS version, cipher and
# whether the session was resumed, and every new upstream connection's first request is
# logged (cheap: once per connection) so the run can count handshakes and resumptions.
up_tls_conf() {
    [ "$UP_TLS" = 1 ] || return 0
    cat <<EOF
    ssl_certificate $T/pki/server.pem;
    ssl_certificate_key $T/pki/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:bench_tls:10m;
    ssl_session_timeout 1h;
    map \$connection_requests \$first_on_conn { default 0; 1 1; }
    log_format tlsconn '\$http_x_amz_date \$ssl_protocol \$ssl_cipher \$ssl_session_reused';
EOF
}
UP_PROBE_TLS=""
UP_LISTEN_SSL=""
UP_CONN_LOG=""
if [ "$UP_TLS" = 1 ]; then
    UP_PROBE_TLS=" tls=\$ssl_protocol/\$ssl_cipher resumed=\$ssl_session_reused"
    UP_LISTEN_SSL=" ssl"
    UP_CONN_LOG="access_log $T/up-conns.log tlsconn if=\$first_on_conn;"
fi

cat >"$T/up.conf" <<EOF
worker_processes $UP_WORKERS;
$(ngx_common up)
http {
$(ngx_http_common up)
$(up_tls_conf)
    map \$http_x_bench_probe \$bench_probe { default 0; "~." 1; }
    log_format probe '\$request_method \$request_uri host=\$http_host '
                     'x-amz-date=\$http_x_amz_date '
                     'x-amz-content-sha256=\$http_x_amz_content_sha256 '
                     'authorization="\$http_authorization"$UP_PROBE_TLS';
    server {
        listen 127.0.0.1:$P_UP$UP_LISTEN_SSL backlog=4096;
        access_log $T/up-probe.log probe if=\$bench_probe;
        $UP_CONN_LOG
        location / {
            if (\$http_authorization !~ "^AWS4-HMAC-SHA256 Credential=$AKID/[0-9]{8}/us-east-1/s3/aws4_request, ?SignedHeaders=[a-z0-9;-]+, ?Signature=[0-9a-f]{64}\$") {
                return 403 "no SigV4 Authorization header\n";
            }
            return 200 "ok\n";
        }
    }
}
EOF

# nginx as the plain reverse proxy: HTTP/1.1 keep-alive to the upstream. It signs nothing; it
# sets a constant SigV4-shaped Authorization (and the two x-amz headers) so the upstream does
# the same check and parses the same header bytes for both proxies.
# UP_TLS=1: proxy_pass https over the same keep-alive pool, SNI and verification of the
# logical host's name against the CA given (the test CA, or the unrelated one for the check
# that verification is on), session reuse.
write_proxy_conf() { # workers [ca file]
    local zeros tls=""
    zeros=$(printf '0%.0s' $(seq 1 64))
    if [ "$UP_TLS" = 1 ]; then
        tls="proxy_ssl_server_name on;
            proxy_ssl_name $LOGICAL_HOST;
            proxy_ssl_session_reuse on;
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate ${2:-$T/pki/ca.pem};
            proxy_ssl_protocols TLSv1.2 TLSv1.3;"
    fi
    cat >"$T/proxy.conf" <<EOF
worker_processes $1;
$(ngx_common proxy)
http {
$(ngx_http_common proxy)
    upstream bench_upstream {
        server 127.0.0.1:$P_UP;
        keepalive 256;
        keepalive_requests 1000000;
        keepalive_timeout 75s;
    }
    server {
        listen 127.0.0.1:$P_NGX backlog=4096;
        location / {
            proxy_pass $UP_SCHEME://bench_upstream;
            $tls
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $LOGICAL_HOST;
            proxy_set_header X-Amz-Date 20260101T000000Z;
            proxy_set_header X-Amz-Content-SHA256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855;
            proxy_set_header Authorization "AWS4-HMAC-SHA256 Credential=$AKID/20260101/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=$zeros";
        }
    }
}
EOF
}

start_nginx() { # name: runs nginx in the foreground (non-daemon) on $T/name.conf
    mkdir -p "$T/$1-tmp"
    "$NGINX" -p "$T" -e "$T/$1-error.log" -c "$T/$1.conf" -g 'daemon off;' \
        >"$T/$1.out" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

# UP_TLS=1: sigv4d's default https scheme, the test CA (SIG_CA_FILE overrides it, for the
# wrong-CA check) and --connect-to for port 443.
start_sigv4d() { # port workers upstream_port extra-args...: sets LAST_PID
    local port=$1 workers=$2 up=$3 upstream
    shift 3
    upstream=(--upstream-url-scheme http --connect-to "$LOGICAL_HOST:80:127.0.0.1:$up")
    [ "$UP_TLS" != 1 ] ||
        upstream=(--ca-file "${SIG_CA_FILE:-$T/pki/ca.pem}" --connect-to "$LOGICAL_HOST:443:127.0.0.1:$up")
    env -u AWS_SESSION_TOKEN -u AWS_PROFILE -u AWS_CONFIG_FILE -u AWS_SHARED_CREDENTIALS_FILE \
        -u SSL_CERT_FILE -u SSL_CERT_DIR \
        AWS_ACCESS_KEY_ID=$AKID AWS_SECRET_ACCESS_KEY="$SECRET" \
        "$SIGV4D" --port "127.0.0.1:$port" --workers "$workers" \
        --host "$LOGICAL_HOST" "${upstream[@]}" --region us-east-1 \
        --name "${SIG_SERVICE:-s3}" "$@" \
        >>"$T/sigv4d.log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
    wait_http "http://127.0.0.1:$port/" || die "sigv4d did not come up on 127.0.0.1:$port: $(tail -5 "$T/sigv4d.log")"
    kill -0 "$LAST_PID" 2>/dev/null || die "sigv4d exited: $(tail -5 "$T/sigv4d.log")"
}

vm_kib() { # pid field: VmHWM/VmRSS in KiB
    awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"
}

say "sigv4d load benchmark  $(date -u '+%Y-%m-%dT%H:%M:%SZ')"
say "binary: $SIGV4D ($("$SIGV4D" --version 2>&1 | head -1))"
say "commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
say "machine: $(nproc) cores, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo), load average $(cut -d' ' -f1-3 /proc/loadavg)"
say "nginx: $("$NGINX" -v 2>&1 | sed 's/.*: //'), wrk: $(wrk -v 2>&1 | head -1 | cut -d' ' -f2)"
[ "$UP_TLS" != 1 ] || say "upstreams: HTTPS (UP_TLS=1), $(openssl version)"
say ""

# ---- 1. single-core SHA-256 rate, and the expected hash of the PUT body --------------------
say "== SHA-256, one core"
sha_line=$(openssl speed -bytes 16384 -seconds 3 sha256 2>/dev/null | awk '$1 == "sha256" { print $2 }')
SHA_OPENSSL_MBS=$(awk -v k="${sha_line%k}" 'BEGIN { printf "%.0f", k / 1000 }')
read -r SHA_PY_MBS PUT_SHA256 < <("$PY" - "$PUT_BYTES" <<'EOF'
import hashlib, sys, time
n = int(sys.argv[1]); block = bytes(1 << 20); h = hashlib.sha256(); left = n
t = time.perf_counter()
while left:
    k = min(left, len(block)); h.update(block[:k] if k < len(block) else block); left -= k
dt = time.perf_counter() - t
print("%.0f %s" % (n / dt / 1e6, h.hexdigest()))
EOF
)
say "openssl speed sha256, 16 KiB blocks, 3 s:  ${SHA_OPENSSL_MBS} MB/s"
say "hashlib.sha256 over the $PUT_BYTES-byte PUT body: ${SHA_PY_MBS} MB/s"
if [ "$UP_TLS" = 1 ]; then # the cipher TLS 1.3 negotiates here (the run prints it): context only
    aes_line=$(openssl speed -bytes 16384 -seconds 3 -evp aes-256-gcm 2>/dev/null | awk '$1 == "AES-256-GCM" { print $2 }')
    say "openssl speed -evp aes-256-gcm, 16 KiB blocks, 3 s: $(awk -v k="${aes_line%k}" 'BEGIN { printf "%.0f", k / 1000 }') MB/s"
fi
say "(MB = 10^6 bytes; the ratio below uses the openssl figure)"
say ""

# ---- 2. upstreams, and the checks that come before any timing -----------------------------
start_nginx up
py_tls=()
[ "$UP_TLS" != 1 ] || py_tls=(--tls-cert "$T/pki/server.pem" --tls-key "$T/pki/server.key")
"$PY" "$HERE/upstream.py" --port "$P_PY" --access-key "$AKID" --secret-key-file "$T/secret" \
    "${py_tls[@]+"${py_tls[@]}"}" >"$T/upstream-py.log" 2>&1 &
PIDS+=("$!")
wait_http "$UP_SCHEME://127.0.0.1:$P_UP/" "${UP_CURL[@]+"${UP_CURL[@]}"}" ||
    die "upstream nginx did not start: $(cat "$T/up-error.log" "$T/up.out")"
wait_http "$UP_SCHEME://127.0.0.1:$P_PY/" "${UP_CURL[@]+"${UP_CURL[@]}"}" ||
    die "upstream.py did not start: $(cat "$T/upstream-py.log")"

say "== checks before timing"
code=$(curl -s -o /dev/null -w '%{http_code}' "${UP_CURL[@]+"${UP_CURL[@]}"}" "$UP_SCHEME://127.0.0.1:$P_UP/")
[ "$code" = 403 ] || die "the upstream answered $code to an unsigned request; it must refuse it (403)"
say "ok   upstream nginx refuses an unsigned request (403)"

# The signature itself, re-computed by botocore in upstream.py: a GET, a small PUT (hashed in
# memory) and a 3 MiB PUT above a 1 MiB --max-buffer-bytes (sigv4d sends S3 uploads like that
# aws-chunked: upstream.py then re-checks every chunk signature too).
head -c 3145728 /dev/urandom >"$T/check.bin"
start_sigv4d "$P_CHK" 1 "$P_PY" --max-buffer-bytes 1M --spool-dir "$T"
CHK_PID=$LAST_PID
for req in "GET /bench/check" "PUT /bench/check-put" "PUT /bench/verify-chunks/check"; do
    method=${req% *}
    path=${req#* }
    args=()
    case $path in
    *check-put) args=(--data-binary "hello from the load benchmark" -X PUT) ;;
    *verify-chunks*) args=(-T "$T/check.bin") ;;
    esac
    code=$(curl -s -o "$T/check.json" -w '%{http_code}' "${args[@]+"${args[@]}"}" \
        "http://127.0.0.1:$P_CHK$path?x-id=1&a=b%20c")
    [ "$code" = 200 ] || die "$method through sigv4d did not verify at the upstream ($code): $(cat "$T/check.json")"
    say "ok   $method $path through sigv4d: $("$PY" -c 'import json, sys
a = json.load(open(sys.argv[1]))
print("%s; %d body bytes, x-amz-content-sha256=%s, signed: %s" % (a["why"], a["body_bytes"],
      a["x_amz_content_sha256"], a["signed_headers"]))' "$T/check.json")"
done
stop_pid "$CHK_PID"

# The benchmarked path: sigv4d -> upstream nginx, logged once with X-Bench-Probe.
start_sigv4d "$P_SIG" 1 "$P_UP"
code=$(curl -s -o "$T/probe.out" -w '%{http_code}' -H 'X-Bench-Probe: 1' "http://127.0.0.1:$P_SIG/bench/obj")
[ "$code" = 200 ] || die "probe through sigv4d to the upstream nginx got $code: $(cat "$T/probe.out")"
sleep 0.2
grep -q "authorization=\"AWS4-HMAC-SHA256 Credential=$AKID/" "$T/up-probe.log" ||
    die "the upstream did not log a signed probe request: $(cat "$T/up-probe.log" 2>/dev/null)"
say "ok   upstream nginx received, from sigv4d: $(tail -1 "$T/up-probe.log")"
stop_pid "$LAST_PID"

# UP_TLS=1: verification is on in both proxies. Trusting only a CA that signed nothing the
# upstream presents, each must answer an error and no request may reach the upstream (the
# probe log does not grow).
if [ "$UP_TLS" = 1 ]; then
    wrong_ca() { # label url file-with-the-reason: one probe that must fail before the upstream
        local before code
        before=$(wc -l <"$T/up-probe.log")
        code=$(curl -s -o "$T/wrong-ca.out" -w '%{http_code}' --max-time 15 -H 'X-Bench-Probe: 1' "$2")
        sleep 0.2
        [ "$code" -ge 500 ] || die "$1 trusting the wrong CA answered $code: verification is off?"
        [ "$(wc -l <"$T/up-probe.log")" = "$before" ] ||
            die "$1 trusting the wrong CA still reached the upstream: $(tail -1 "$T/up-probe.log")"
        say "ok   $1 trusting an unrelated CA: HTTP $code, nothing reached the upstream; why: $(grep -i 'certificate\|verif' "$3" | tail -1 | sed 's/.*\] //' | cut -c1-150)"
    }
    SIG_CA_FILE=$T/pki/other-ca.pem start_sigv4d "$P_SIG" 1 "$P_UP"
    wrong_ca sigv4d "http://127.0.0.1:$P_SIG/bench/obj" "$T/wrong-ca.out" # its answer says why
    stop_pid "$LAST_PID"
    write_proxy_conf 1 "$T/pki/other-ca.pem"
    start_nginx proxy
    wait_http "http://127.0.0.1:$P_NGX/" || die "nginx proxy did not start: $(cat "$T/proxy-error.log")"
    wrong_ca "nginx proxy" "http://127.0.0.1:$P_NGX/bench/obj" "$T/proxy-error.log"
    stop_pid "$LAST_PID"
fi
say ""

# ---- 3. wrk: nginx and sigv4d alternating -----------------------------------------------
FAILURES=()
: >"$T/wrk.tsv"
run_wrk() { # label url secs: sets RESULT to wrk-report.lua's fields, or records a failure
    local out
    out=$(wrk -t "$THREADS" -c "$CONNS" -d "${3}s" --timeout 5s -s "$HERE/wrk-report.lua" "$2" 2>&1) ||
        { FAILURES+=("$1: wrk failed: $out"); return 0; }
    RESULT=$(grep '^WRK_RESULT' <<<"$out" | sed 's/^WRK_RESULT //') ||
        { FAILURES+=("$1: no result line from wrk: $out"); return 0; }
}
cpu_ticks() { # pids...: user+system CPU clock ticks of these processes (all their threads)
    local pid total=0 t
    for pid in "$@"; do
        t=$(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0)
        total=$((total + t))
    done
    echo "$total"
}
timed_round() { # label url workers round pids...: one timed wrk round with the proxy's CPU time
    local label=$1 url=$2 w=$3 r=$4 before after
    shift 4
    RESULT=""
    before=$(cpu_ticks "$@")
    run_wrk "$label" "$url" "$DURATION"
    after=$(cpu_ticks "$@")
    [ -z "$RESULT" ] || RESULT="$RESULT cpu_ticks=$((after - before)) clk_tck=$(getconf CLK_TCK)"
    [ -z "$RESULT" ] || row "$label" "$w" "$r" "$RESULT"
    printf '   round %s %-6s %s\n' "$r" "$label" "$RESULT"
}
row() { # proxy workers round result
    printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$T/wrk.tsv"
    local errs
    errs=$(tr ' ' '\n' <<<"$4" | awk -F= '/^err_/ && $2 != 0 { printf "%s ", $0 }')
    [ -z "$errs" ] || FAILURES+=("$1 workers=$2 round $3: $errs")
}

for W in $WORKERS; do
    say "== wrk: workers=$W, $CONNS connections, $THREADS thread(s), ${DURATION}s x $ROUNDS rounds each, keep-alive"
    write_proxy_conf "$W"
    start_nginx proxy
    NGX_PID=$LAST_PID
    wait_http "http://127.0.0.1:$P_NGX/" || die "nginx proxy did not start: $(cat "$T/proxy-error.log")"
    start_sigv4d "$P_SIG" "$W" "$P_UP"
    SIG_PID=$LAST_PID
    probe=()
    [ "$UP_TLS" != 1 ] || probe=(-H 'X-Bench-Probe: 1') # shows each proxy's TLS parameters
    for p in "nginx $P_NGX" "sigv4d $P_SIG"; do
        code=$(curl -s -o /dev/null -w '%{http_code}' "${probe[@]+"${probe[@]}"}" "http://127.0.0.1:${p#* }/bench/obj")
        [ "$code" = 200 ] || die "${p% *} answered $code before timing"
        [ "$UP_TLS" != 1 ] || say "   ${p% *} -> upstream: $(tail -1 "$T/up-probe.log" | grep -o 'tls=.*')"
    done
    [ "$UP_TLS" != 1 ] || : >"$T/up-conns.log" # count the connections of this worker count only
    run_wrk warmup-nginx "http://127.0.0.1:$P_NGX/bench/obj" "$WARMUP"
    run_wrk warmup-sigv4d "http://127.0.0.1:$P_SIG/bench/obj" "$WARMUP"
    for r in $(seq 1 "$ROUNDS"); do
        # nginx's CPU is its workers' (the master only supervises); sigv4d's is the process's.
        mapfile -t ngx_workers < <(pgrep -P "$NGX_PID")
        timed_round nginx "http://127.0.0.1:$P_NGX/bench/obj" "$W" "$r" "${ngx_workers[@]}"
        timed_round sigv4d "http://127.0.0.1:$P_SIG/bench/obj" "$W" "$r" "$SIG_PID"
    done
    if [ "$PERF" = 1 ] && command -v perf >/dev/null; then
        perf record -q -F 999 -g -p "$SIG_PID" -o "$T/perf.data" -- sleep "$DURATION" \
            >/dev/null 2>&1 &
        perf_pid=$!
        wrk -t "$THREADS" -c "$CONNS" -d "${DURATION}s" "http://127.0.0.1:$P_SIG/bench/obj" >/dev/null 2>&1 || true
        wait "$perf_pid" || true
        say "   perf (untimed extra sigv4d round), top symbols by self time:"
        # awk, not grep | head: head exiting early would SIGPIPE the pipeline, which pipefail
        # and set -e turn into the end of the run (it did, with the longer TLS profile).
        perf report -i "$T/perf.data" --stdio --no-children --sort symbol -g none 2>/dev/null |
            awk '/^ +[0-9]/ && n++ < 25 { print "     " $0 }'
    fi
    say "   sigv4d peak RSS after the wrk rounds: $(vm_kib "$SIG_PID" VmHWM) KiB"
    if [ "$UP_TLS" = 1 ]; then
        # nginx sends the constant X-Amz-Date below; sigv4d the time of signing.
        say "   upstream TLS connections opened during warm-up and rounds (first request of each):"
        awk '{ who = ($1 == "20260101T000000Z") ? "nginx " : "sigv4d"; n[who]++; r[who] += ($4 == "r")
               v[who] = v[who] == "" ? $2 "/" $3 : v[who] }
             END { for (w in n) printf "     %s %4d connections, %4d resumed (%s)\n", w, n[w], r[w], v[w] }' \
            "$T/up-conns.log" | sort
    fi
    stop_pid "$SIG_PID"
    stop_pid "$NGX_PID"
    say ""
done

"$PY" - "$T/wrk.tsv" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    proxy, w, r, res = line.rstrip("\n").split("\t")
    f = dict(kv.split("=") for kv in res.split())
    rps = int(f["requests"]) / (int(f["duration_us"]) / 1e6)
    cpu_us = int(f["cpu_ticks"]) * 1e6 / int(f["clk_tck"]) / max(int(f["requests"]), 1)
    rows.setdefault(w, {}).setdefault(proxy, []).append(
        (int(r), rps, int(f["p50_us"]) / 1000, int(f["p99_us"]) / 1000, cpu_us,
         sum(int(v) for k, v in f.items() if k.startswith("err_"))))
print("== wrk results (latency in ms; cpu = the proxy's own CPU time per request, in us;")
print("   errors = wrk socket errors + responses >= 400)")
print("%-8s %-7s %-7s %12s %9s %9s %8s %7s" % ("workers", "round", "proxy", "req/s", "p50", "p99", "cpu", "errors"))
for w in sorted(rows, key=int):
    med = {}
    for proxy in ("nginx", "sigv4d"):
        rs = rows[w].get(proxy, [])
        for r, rps, p50, p99, cpu, err in rs:
            print("%-8s %-7s %-7s %12.0f %9.3f %9.3f %8.1f %7d" % (w, r, proxy, rps, p50, p99, cpu, err))
        if rs:
            med[proxy] = tuple(statistics.median(x[i] for x in rs) for i in (1, 2, 3, 4))
    for proxy, (rps, p50, p99, cpu) in med.items():
        print("%-8s %-7s %-7s %12.0f %9.3f %9.3f %8.1f" % (w, "median", proxy, rps, p50, p99, cpu))
    if len(med) == 2:
        rr = med["sigv4d"][0] / med["nginx"][0]
        pr = med["sigv4d"][2] / med["nginx"][2]
        cr = med["sigv4d"][3] / med["nginx"][3]
        print("workers=%s  sigv4d/nginx: req/s %.2f (target >= 1.00: %s)   p99 %.2f (target <= 1.20: %s)"
              "   cpu/request %.2f"
              % (w, rr, "met" if rr >= 1.0 else "NOT met", pr, "met" if pr <= 1.2 else "NOT met", cr))
    print()
EOF

# ---- 4. large-body PUT through sigv4d --------------------------------------------------
say "== PUT of $PUT_BYTES bytes through sigv4d (workers=$PUT_WORKERS) to upstream.py (reads and discards$([ "$UP_TLS" != 1 ] || echo '; over TLS: the ceilings too'))"
# A sparse file of zeros: no disk involved. Read it once first: the first read of fresh page
# cache on this VM costs seconds (first touch of guest memory), which would be charged to
# whichever run came first.
truncate -s "$PUT_BYTES" "$T/put.bin"
cat "$T/put.bin" >/dev/null
mkdir -p "$T/spool"
put() { # url [curl args]: curl -T, prints "code seconds"
    local url=$1
    shift
    curl -s -o "$T/put.json" -w '%{http_code} %{time_total}\n' --max-time 300 \
        -H 'Content-Type: application/octet-stream' "$@" -T "$T/put.bin" "$url"
}
# The upstream's own ceilings (unsigned, so it answers 403 after reading the whole body).
read -r code secs < <(put "$UP_SCHEME://127.0.0.1:$P_PY/bench/direct" "${UP_CURL[@]+"${UP_CURL[@]}"}" \
    -H 'X-Amz-Content-SHA256: UNSIGNED-PAYLOAD')
say "$(printf '%-46s %6.0f MB/s  (curl straight to upstream.py, which only drains; HTTP %s)' \
    "ceiling: no proxy, upstream drains" "$(awk -v b="$PUT_BYTES" -v s="$secs" 'BEGIN { print b / s / 1e6 }')" "$code")"
read -r code secs < <(put "$UP_SCHEME://127.0.0.1:$P_PY/bench/direct" "${UP_CURL[@]+"${UP_CURL[@]}"}")
say "$(printf '%-46s %6.0f MB/s  (the same, upstream hashing the body as it must for the spooled run; HTTP %s)' \
    "ceiling: no proxy, upstream drains + hashes" "$(awk -v b="$PUT_BYTES" -v s="$secs" 'BEGIN { print b / s / 1e6 }')" "$code")"
busy_cs() { # the machine's busy time so far, all cores, in clock ticks (/proc/stat)
    awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8; exit }' /proc/stat
}
thread_cpu() { # pid: "total (threads: t1 t2 ...)" in seconds, threads that ran
    for t in /proc/"$1"/task/*; do awk '{ print $14 + $15 }' "$t/stat"; done |
        awk -v hz="$HZ" '$1 > 0 { s += $1; l = l sprintf(" %.2f", $1 / hz) }
            END { printf "%.2f s (threads:%s)", s / hz, l }'
}
HZ=$(getconf CLK_TCK)
NCPU=$(nproc)
for mode in $PUT_MODES; do
    extra=(--max-buffer-bytes "$MAX_BUFFER" --spool-dir "$T/spool")
    service=s3
    path=/bench/put-$mode
    case $mode in
    chunked) desc="s3, defaults (aws-chunked expected)"
        [ "$VERIFY_CHUNKS" = 1 ] && path=/bench/verify-chunks/put ;;
    spooled) service=execute-api # not S3: no aws-chunked, so hashed and spooled
        desc="execute-api: hashed, >$MAX_BUFFER spooled" ;;
    unsigned) extra+=(--unsigned-payload)
        desc="s3, --unsigned-payload: streamed" ;;
    *) die "unknown PUT mode $mode (chunked, spooled, unsigned)" ;;
    esac
    say "sigv4d $desc:"
    rates=()
    for round in $(seq 1 "$PUT_ROUNDS"); do
        # A fresh sigv4d per round: its peak RSS and CPU are this PUT's alone.
        SIG_SERVICE=$service start_sigv4d "$P_SIG" "$PUT_WORKERS" "$P_PY" "${extra[@]}"
        SIG_PID=$LAST_PID
        code=$(curl -s -o "$T/check.json" -w '%{http_code}' "http://127.0.0.1:$P_SIG/bench/pre")
        [ "$code" = 200 ] || die "signed GET before the $mode PUT failed ($code): $(cat "$T/check.json")"
        busy0=$(busy_cs)
        read -r code secs < <(put "http://127.0.0.1:$P_SIG$path") || true
        busy1=$(busy_cs)
        hwm=$(vm_kib "$SIG_PID" VmHWM)
        cpu=$(thread_cpu "$SIG_PID") # loop thread, then the hasher for aws-chunked
        stop_pid "$SIG_PID"
        verdict=$("$PY" - "$mode" "$PUT_BYTES" "$PUT_SHA256" "$code" "$T/put.json" <<'EOF' || true
import json, sys
mode, n, sha, code = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
try:
    a = json.load(open(sys.argv[5]))
except (OSError, ValueError):
    print("FAIL: HTTP %s, no answer from the upstream" % code); sys.exit(0)
h = a.get("x_amz_content_sha256")
if code != "200" or not a.get("ok"):
    print("FAIL: HTTP %s: %s" % (code, a.get("why"))); sys.exit(0)
if h == "STREAMING-AWS4-HMAC-SHA256-PAYLOAD":
    dec = int(a.get("x_amz_decoded_content_length") or -1)
    if dec != n:
        print("FAIL: aws-chunked decoded length %s" % dec)
    elif a["why"].startswith("ok, every chunk"):
        print("ok: aws-chunked, %d decoded bytes, seed signature verified by botocore, every chunk signature verified" % a["body_bytes"])
    else:
        print("ok: aws-chunked, %d bytes on the wire for %d, seed signature verified by botocore (chunk signatures: checked on 3 MiB before timing; VERIFY_CHUNKS=1 checks these too)" % (a["body_bytes"], dec))
elif a["body_bytes"] != n:
    print("FAIL: the upstream received %d bytes of %d" % (a["body_bytes"], n))
elif mode == "unsigned" and h != "UNSIGNED-PAYLOAD":
    print("FAIL: expected UNSIGNED-PAYLOAD, got %s" % h)
elif h is None and a.get("body_sha256") == sha:
    print("ok: %d bytes, payload hash not sent (not S3), body hashed by upstream.py = the file's SHA-256, signature verified by botocore" % n)
elif h is None:
    print("FAIL: the body hashed by the upstream (%s) is not the file's SHA-256 %s" % (a.get("body_sha256"), sha))
elif mode != "unsigned" and h != sha:
    print("FAIL: x-amz-content-sha256 %s is not the body's SHA-256 %s" % (h, sha))
else:
    print("ok: %d bytes, x-amz-content-sha256=%s, signature verified by botocore" % (n, h[:16] + ("..." if len(h) > 16 else "")))
EOF
        )
        mbs=$(awk -v b="$PUT_BYTES" -v s="${secs:-0}" 'BEGIN { if (s > 0) printf "%.0f", b / s / 1e6; else print 0 }')
        rates+=("$mbs")
        machine=$(awk -v c="$((busy1 - busy0))" -v hz="$HZ" -v s="${secs:-0}" -v n="$NCPU" \
            'BEGIN { printf "%.2f of %.2f core-s", c / hz, s * n }')
        spool_left=$(find "$T/spool" -type f | wc -l)
        say "$(printf '  round %d: %6s MB/s = %s x SHA-256  peak RSS %.1f MiB  sigv4d CPU %s  machine busy %s' \
            "$round" "$mbs" "$(awk -v a="$mbs" -v b="$SHA_OPENSSL_MBS" 'BEGIN { printf "%.2f", a / b }')" \
            "$(awk -v k="$hwm" 'BEGIN { print k / 1024 }')" "$cpu" "$machine")"
        say "           $verdict; spool files left: $spool_left"
        rss_ok=$(awk -v k="$hwm" -v ok="${rss_ok:-met}" 'BEGIN { print (k < 65536 && ok == "met") ? "met" : "NOT met" }')
        case $verdict in ok*) ;; *) FAILURES+=("PUT $mode round $round: $verdict") ;; esac
    done
    med=$(printf '%s\n' "${rates[@]}" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
    ratio=$(awk -v a="$med" -v b="$SHA_OPENSSL_MBS" 'BEGIN { printf "%.2f", a / b }')
    tput_ok=$(awk -v r="$ratio" 'BEGIN { print (r >= 0.8) ? "met" : "NOT met" }')
    say "$(printf '  median of %d: %6s MB/s = %s x SHA-256 (%s MB/s); targets: >= 0.80 x SHA-256: %s; peak RSS < 64 MiB: %s' \
        "$PUT_ROUNDS" "$med" "$ratio" "$SHA_OPENSSL_MBS" "$tput_ok" "$rss_ok")"
    unset rss_ok
done
say ""

if [ ${#FAILURES[@]} -gt 0 ]; then
    say "!! FAILED: the figures above are not valid measurements:"
    printf '!!   %s\n' "${FAILURES[@]}"
    exit 1
fi
say "all requests succeeded (no errors, no non-2xx responses)"
