# Shared by scripts/demo and scripts/test: system packages and the project venv.
# Sourced, not run. Installs only what is missing; as non-root it says exactly what to install instead.

ensure_packages() {
    # usage: ensure_packages "program:debian-package" ...
    local missing=() item program package
    for item in "$@"; do
        program=${item%%:*}
        package=${item#*:}
        if [ "$program" = "ensurepip" ]; then
            python3 -c "import ensurepip, venv" >/dev/null 2>&1 || missing+=("$package")
        elif ! command -v "$program" >/dev/null 2>&1; then
            missing+=("$package")
        fi
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing system packages: ${missing[*]}" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
        # Debian starts the packaged redis-server at install; our tests and demo run their own.
        if printf '%s\n' "${missing[@]}" | grep -qx redis-server && command -v systemctl >/dev/null 2>&1; then
            systemctl disable --now redis-server >/dev/null 2>&1 || true
        fi
    else
        echo "missing: ${missing[*]}" >&2
        echo "install them with: sudo apt-get install ${missing[*]}" >&2
        return 1
    fi
}

ensure_venv() {
    # usage: ensure_venv DIR EXTRAS   (EXTRAS: "" or "[test]")
    local venv=$1 extras=$2 stamp
    stamp="$venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)$extras"
    if [ ! -x "$venv/bin/python" ]; then
        python3 -m venv "$venv"
    fi
    if [ ! -e "$stamp" ]; then
        "$venv/bin/python" -m pip install -q --upgrade pip >/dev/null
        "$venv/bin/python" -m pip install -q -e ".$extras"
        rm -f "$venv"/.installed-*
        touch "$stamp"
    fi
}
