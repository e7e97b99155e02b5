# Sourced by the setup scripts: `apt_install PKG...` installs Debian
# packages with apt-get (with sudo when not root), refreshing the package
# lists once if the first try fails. Needs `say` defined by the caller.
apt_install() {
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    say "installing $* (apt-get)"
    "${sudo[@]}" apt-get install -y -qq "$@" >/dev/null || {
        "${sudo[@]}" apt-get update -qq >/dev/null && "${sudo[@]}" apt-get install -y -qq "$@" >/dev/null
    }
}
