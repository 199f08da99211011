#!/usr/bin/env bash
# check-banned.sh [SOURCE_DIR]: fails on banned calls and includes in our C, printing each
# offending line. Comments and string literals are ignored (a comment may name a banned call to
# explain why it is not used).
#   everywhere (signer providers proxy bench tests): strcpy strcat sprintf vsprintf strtok atoi
#   signer/: libevent (<event2/), llhttp, stdio file I/O, getenv, the clock, heap allocation
#   providers/: libevent (<event2/): their I/O goes through the injected struct cred_io
set -euo pipefail
cd "${1:-$(dirname "$0")/..}"

# Prints FILE:LINE: text for every match of the Perl regex $2 in the files listed after it.
# The file is first blanked of comments and string/char literals, keeping line numbers, so
# the pattern only meets code; the original line is what gets printed.
scan() {
    local what=$1 re=$2
    shift 2
    [ $# -gt 0 ] || return 0
    BANNED_RE=$re BANNED_WHAT=$what perl -e '
        my ($re, $what, $bad) = ($ENV{BANNED_RE}, $ENV{BANNED_WHAT}, 0);
        for my $f (@ARGV) {
            open(my $fh, "<", $f) or die "$f: $!";
            my $src = do { local $/; <$fh> };
            my @orig = split /\n/, $src, -1;
            # Blank comments and literals but keep their newlines; keep #include <...> and
            # #include "..." paths visible by not treating include lines as literals.
            (my $code = $src) =~ s{
                (^[ \t]*\#[ \t]*include[^\n]*)        # include lines stay as they are
              | (/\*.*?\*/)                           # block comment
              | (//[^\n]*)                            # line comment
              | ("(?:\\.|[^"\\\n])*")                 # string literal
              | (\x27(?:\\.|[^\x27\\\n])*\x27)        # char literal
            }{ defined $1 ? $1 : ($& =~ tr/\n//cdr) }gemsx;
            my @lines = split /\n/, $code, -1;
            for my $i (0 .. $#lines) {
                next unless $lines[$i] =~ /$re/;
                printf "%s:%d: %s: %s\n", $f, $i + 1, $what, $orig[$i];
                $bad++;
            }
        }
        exit($bad ? 1 : 0);
    ' "$@"
}

c_files() {
    find "$@" -type f \( -name '*.c' -o -name '*.h' \) -not -path 'tests/fuzz/corpus/*' \
        -print0 2>/dev/null | sort -z | xargs -0 -r printf '%s\n'
}

mapfile -t ours < <(c_files signer providers proxy bench tests)
mapfile -t signer < <(c_files signer)
mapfile -t providers < <(c_files providers)

fail=0
scan "unbounded or unchecked string call" \
    '\b(strcpy|strcat|sprintf|vsprintf|strtok|atoi)\s*\(' "${ours[@]}" || fail=1
scan "libevent/llhttp in the pure signer" \
    '^\s*#\s*include\s*[<"](event2/|event\.h|llhttp)' "${signer[@]}" || fail=1
scan "I/O in the pure signer" \
    '\b(fopen|freopen|fdopen|fclose|fread|fwrite|fgets|fputs|fputc|fgetc|getc|putc|getchar|putchar|puts|printf|fprintf|vprintf|vfprintf|perror|fflush|fscanf|scanf|popen|tmpfile|open|read|write|stdin|stdout|stderr|syslog)\b\s*[\(;,)]' \
    "${signer[@]}" || fail=1
scan "environment in the pure signer" '\b(getenv|secure_getenv|environ)\b' "${signer[@]}" || fail=1
scan "clock in the pure signer (the time is an argument)" \
    '\b(time|clock_gettime|gettimeofday|clock|timespec_get)\s*\(' "${signer[@]}" || fail=1
scan "heap allocation in the pure signer (memory is caller-provided)" \
    '\b(malloc|calloc|realloc|reallocarray|free|strdup|strndup|aligned_alloc|posix_memalign)\s*\(' \
    "${signer[@]}" || fail=1
scan "libevent in a provider (use struct cred_io)" \
    '^\s*#\s*include\s*[<"](event2/|event\.h)' "${providers[@]}" || fail=1

if [ $fail -ne 0 ]; then
    echo "check-banned: banned patterns found (lines above)" >&2
    exit 1
fi
echo "check-banned: ${#ours[@]} files clean"
