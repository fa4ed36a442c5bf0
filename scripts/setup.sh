# shellcheck shell=bash
# Sourced by scripts/test.sh and scripts/demo.sh: installs the Debian packages
# xac needs (only the missing ones) and builds the tree in build/. Kept in one
# place so that the demo and the tests always build the same way.

XAC_ROOT=${XAC_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}

XAC_PACKAGES=(build-essential cmake pkg-config mariadb-server mariadb-client libmariadb-dev
    postgresql postgresql-client odbc-postgresql odbc-mariadb unixodbc unixodbc-dev freetds-dev
    freetds-bin tdsodbc libconfig-dev libcunit1-dev clang-format coreutils util-linux findutils
    gawk procps python3-psycopg2 gnuplot-nox)

say() { echo "==> $*"; }

# Installs the packages of XAC_PACKAGES that dpkg does not have yet.
xac_install_deps() {
    command -v dpkg-query > /dev/null ||
        { echo "dpkg-query not found: this script installs packages on Debian (12) only" >&2; return 1; }
    local p missing=()
    for p in "${XAC_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2> /dev/null | grep 'install ok installed' > /dev/null ||
            missing+=("$p")
    done
    if [ ${#missing[@]} = 0 ]; then
        say "all ${#XAC_PACKAGES[@]} needed packages are installed"
        return 0
    fi
    local sudo=()
    if [ "$(id -u)" != 0 ]; then
        command -v sudo > /dev/null ||
            { echo "missing packages (${missing[*]}) and not root, and sudo is not installed" >&2; return 1; }
        sudo=(sudo)
    fi
    say "installing ${missing[*]}"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${missing[@]}"
}

# xac_build [TARGET...]: configures build/ and builds, all targets by default.
# XAC_BUILD_TYPE overrides the CMake build type (default RelWithDebInfo).
xac_build() {
    local build=$XAC_ROOT/build
    local targets=()
    local t
    for t in "$@"; do targets+=(--target "$t"); done
    say "building in $build"
    # Linked outputs are removed first so that a target that no longer builds
    # cannot leave an old binary behind to be tested. Relinking is cheap.
    if [ -d "$build" ]; then
        find "$build" -path '*/CMakeFiles' -prune -o -type f -perm -u+x \
            \( -name 'xac*' -o -name 'test_*' -o -name 'itest_*' -o -name 'prog_*' -o -name 'libxac*' \) \
            -print0 | xargs -0 -r rm -f
    fi
    cmake -S "$XAC_ROOT" -B "$build" -DCMAKE_BUILD_TYPE="${XAC_BUILD_TYPE:-RelWithDebInfo}" > /dev/null
    # With XAC_KEEP_GOING=1, make builds every target it can despite errors,
    # so that the tests of the parts that do build can still run.
    local keep_going=()
    if [ "${XAC_KEEP_GOING:-0}" = 1 ] && grep -q '^CMAKE_GENERATOR:INTERNAL=Unix Makefiles' "$build/CMakeCache.txt"; then
        keep_going=(-- -k)
    fi
    cmake --build "$build" -j"$(nproc)" "${targets[@]}" "${keep_going[@]}"
}
