# Sourced by the install scripts:
#   apt_install WHY PACKAGE...   installs the Debian packages with apt when run
#                                as root, saying so (WHY: what they are for);
#                                otherwise stops with the exact command to run.
#                                Does nothing without packages.

apt_install() {
  local why=$1
  shift
  [ "$#" -gt 0 ] || return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    printf '==> missing: %s (Debian names); install them with your package manager and run this again\n' "$*" >&2
    exit 1
  fi
  if [ "$(id -u)" != 0 ]; then
    printf '==> missing system packages for %s; run:\n==>   sudo apt-get update && sudo apt-get install -y %s\n' "$why" "$*" >&2
    exit 1
  fi
  printf '==> installing %s with apt (%s)\n' "$*" "$why" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "$@" >/dev/null
}
