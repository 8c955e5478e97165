#!/usr/bin/env bash
# Build release binaries of cbr for every target that can be built here.
#
# Usage: build/build.sh VERSION        (e.g. 1.2.3 or v1.2.3)
#
# Output, named like the original Go tool's release binaries:
#   dist/cbr_<version>_<os>_<arch>[.exe]          os: linux, darwin, windows
#   dist/cbr_<version>_<os>_<arch>[.exe].sha256   arch: amd64, arm64
#   dist/checksums.txt                            all binaries built by this run
#   dist/man/cbr.1, dist/man/cbr-<command>.1      man pages (the same for every target)
#   dist/completions/cbr.bash, _cbr, cbr.fish, _cbr.ps1
#                                                 shell completion scripts
#
# The man pages (`cargo run --example man`) and completion scripts (`cbr completions
# SHELL`) come from the same clap definitions as `--help`; they are generated with a host
# build, so a cross-only run also builds cbr for the host.
#
# Targets: the host target always, plus each of the known targets below that
# `rustup target list --installed` shows and whose linker is present.  Others
# are skipped with a one-line message on stderr.  All builds share target/.
#
# Environment:
#   CBR_BUILD_DRY_RUN=1         print what would be built; build nothing
#   CBR_BUILD_TARGETS="T1 T2"   build exactly these target triples and fail,
#                               instead of skipping, if one cannot be built
#                               (the release workflow uses this)
#   CARGO_TARGET_<TRIPLE>_LINKER  linker for a cross target (overrides the
#                               default guess, e.g. aarch64-linux-gnu-gcc)
#
# Kept compatible with bash 3.2 (macOS /bin/bash): no associative arrays, no
# mapfile, no empty-array expansion.
set -euo pipefail

KNOWN_TARGETS="x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu x86_64-apple-darwin aarch64-apple-darwin x86_64-pc-windows-msvc x86_64-pc-windows-gnu"

die() {
    echo "build.sh: error: $*" >&2
    exit 1
}

note() {
    echo "build.sh: $*" >&2
}

usage() {
    echo "usage: $0 VERSION   (semver such as 1.2.3 or v1.2.3-rc.1)" >&2
    exit 2
}

[[ $# -eq 1 && -n $1 ]] || usage

raw_version=$1
version=${raw_version#v}
semver_re='^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$'
if ! [[ $version =~ $semver_re ]]; then
    echo "build.sh: error: invalid version '$raw_version': want MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD], optionally with a leading v" >&2
    exit 2
fi

dry_run=0
[[ ${CBR_BUILD_DRY_RUN:-0} == 1 ]] && dry_run=1

cd "$(dirname "${BASH_SOURCE[0]}")/.."

command -v rustc >/dev/null 2>&1 || die "rustc not found"
[[ $dry_run == 1 ]] || command -v cargo >/dev/null 2>&1 || die "cargo not found"

host=$(rustc -vV | sed -n 's/^host: //p')
[[ -n $host ]] || die "cannot determine the host target from 'rustc -vV'"

if command -v rustup >/dev/null 2>&1; then
    installed=$(rustup target list --installed)
else
    note "rustup not found; only the host target ($host) can be built"
    installed=$host
fi

# "os arch ext" of a target triple, in the Go tool's naming; fails if unknown.
platform_of() {
    local os arch ext=""
    case $1 in
        *-linux-*) os=linux ;;
        *-apple-darwin) os=darwin ;;
        *-windows-*) os=windows ext=.exe ;;
        *) return 1 ;;
    esac
    case $1 in
        x86_64-*) arch=amd64 ;;
        aarch64-*) arch=arm64 ;;
        *) return 1 ;;
    esac
    echo "$os $arch $ext"
}

# Name of cargo's linker variable for a triple.
linker_var_of() {
    echo "CARGO_TARGET_$(echo "$1" | tr '[:lower:]-' '[:upper:]_')_LINKER"
}

is_installed() {
    echo "$installed" | grep -qx -- "$1"
}

# Decide whether target $1 can be linked here. Sets `linker` (empty: cargo's
# default) or `reason` (why not) and returns 0 or 1.
find_linker() {
    local t=$1 var gcc
    linker="" reason=""
    var=$(linker_var_of "$t")
    if [[ -n ${!var:-} ]]; then
        if command -v "${!var}" >/dev/null 2>&1; then
            linker=${!var}
            return 0
        fi
        reason="$var=${!var} is not an executable"
        return 1
    fi
    [[ $t == "$host" ]] && return 0
    case $t in
        *-unknown-linux-gnu)
            if [[ $host == *-linux-* ]]; then
                gcc="${t%%-*}-linux-gnu-gcc"
                if command -v "$gcc" >/dev/null 2>&1; then
                    linker=$gcc
                    return 0
                fi
                reason="linker $gcc not found"
            else
                reason="no Linux cross linker set up on $host (set $var)"
            fi
            ;;
        *-apple-darwin)
            # Apple's cc links for both macOS architectures.
            if [[ $host == *-apple-darwin ]] && command -v cc >/dev/null 2>&1; then
                return 0
            fi
            reason="needs a macOS host (or set $var)"
            ;;
        *-pc-windows-gnu)
            gcc="${t%%-*}-w64-mingw32-gcc"
            if command -v "$gcc" >/dev/null 2>&1; then
                linker=$gcc
                return 0
            fi
            reason="linker $gcc not found"
            ;;
        *-pc-windows-msvc)
            if [[ $host == *-pc-windows-msvc ]]; then
                return 0
            fi
            reason="needs an MSVC (Windows) host (or set $var)"
            ;;
        *)
            reason="no rule to find a linker"
            ;;
    esac
    return 1
}

strict=0
if [[ -n ${CBR_BUILD_TARGETS:-} ]]; then
    strict=1
    candidates=$CBR_BUILD_TARGETS
else
    candidates="$host $KNOWN_TARGETS"
fi

# Skip a target: fatal when the targets were asked for explicitly.
skip() {
    if [[ $strict == 1 ]]; then
        die "cannot build $1: $2"
    fi
    note "skip $1: $2"
}

# Plan: lines of "triple name linker" (linker "-" for cargo's default).
plan=""
planned_names=" "
planned_triples=" "
for t in $candidates; do
    [[ $planned_triples == *" $t "* ]] && continue
    planned_triples="$planned_triples$t "
    if ! p=$(platform_of "$t"); then
        skip "$t" "no release name for this target"
        continue
    fi
    read -r os arch ext <<<"$p"
    name="cbr_${version}_${os}_${arch}${ext:-}"
    if [[ $t != "$host" ]] && ! is_installed "$t"; then
        skip "$t" "target not installed (rustup target add $t)"
        continue
    fi
    if ! find_linker "$t"; then
        skip "$t" "$reason"
        continue
    fi
    if [[ $planned_names == *" $name "* ]]; then
        skip "$t" "dist/$name is already built from another target"
        continue
    fi
    planned_names="$planned_names$name "
    plan="$plan$t $name ${linker:--}"$'\n'
done

[[ -n $plan ]] || die "nothing to build"

if [[ $dry_run == 1 ]]; then
    echo "version $version, host $host; would build:"
    while read -r t name lk; do
        [[ -n $t ]] || continue
        if [[ $lk == - ]]; then
            echo "  $t -> dist/$name (+ .sha256), default linker"
        else
            echo "  $t -> dist/$name (+ .sha256), $(linker_var_of "$t")=$lk"
        fi
    done <<<"$plan"
    echo "  and dist/checksums.txt, dist/man/*.1, dist/completions/*"
    exit 0
fi

# sha256sum-format line ("<hash>  <name>") for a file in the current directory.
sha256_line() {
    if [[ $(uname -s) == Darwin ]] || ! command -v sha256sum >/dev/null 2>&1; then
        shasum -a 256 "$1"
    else
        sha256sum "$1"
    fi | sed 's/^\([0-9a-f]\{64\}\) \*/\1  /'
}

mkdir -p dist
built=""
while read -r t name lk; do
    [[ -n $t ]] || continue
    note "building $t -> dist/$name"
    (
        if [[ $lk != - ]]; then
            export "$(linker_var_of "$t")=$lk"
        fi
        # The host target builds into target/release, so it shares that build with
        # `cargo build --release`; other targets build into target/<triple>/release.
        if [[ $t == "$host" ]]; then
            cargo build --release --locked </dev/null
        else
            cargo build --release --locked --target "$t" </dev/null
        fi
    )
    ext=""
    [[ $name == *.exe ]] && ext=.exe
    out_dir="target/$t/release"
    [[ $t == "$host" ]] && out_dir="target/release"
    rm -f "dist/$name" "dist/$name.sha256"
    cp "$out_dir/cbr$ext" "dist/$name"
    (cd dist && sha256_line "$name" >"$name.sha256")
    built="$built $name"
done <<<"$plan"

(
    cd dist
    : >checksums.txt
    for name in $built; do
        cat "$name.sha256" >>checksums.txt
    done
)

note "writing man pages and completion scripts"
rm -rf dist/man dist/completions
mkdir -p dist/completions
cargo run --release --locked --quiet --example man -- dist/man </dev/null
for pair in bash:cbr.bash zsh:_cbr fish:cbr.fish powershell:_cbr.ps1; do
    cargo run --release --locked --quiet --bin cbr -- completions "${pair%%:*}" \
        </dev/null >"dist/completions/${pair#*:}"
done

echo "built into dist/:"
cat dist/checksums.txt
ls dist/man dist/completions
