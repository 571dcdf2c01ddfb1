#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder's image: it installs the
# grader's dependencies (pinned in requirements.txt) into a Python 3.11 or newer, checks that the
# grader imports, and keeps the hidden scenarios root's alone. Written by faultfirst
# export-gradescope.
#
# FAULTFIRST_AUTOGRADER_ROOT: where Gradescope's folders are (default /autograder).
# FAULTFIRST_PYTHON: the Python to install into (default: the image's own python3, if it is 3.11
# or newer; else Ubuntu's python3.11, installed with apt).
set -euo pipefail

root="${FAULTFIRST_AUTOGRADER_ROOT:-/autograder}"
source="$root/source"

recent_enough() {
  "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null
}

apt_install() {
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

python="${FAULTFIRST_PYTHON:-}"
if [ -z "$python" ]; then
  for candidate in python3 python3.13 python3.12 python3.11; do
    if command -v "$candidate" >/dev/null && recent_enough "$candidate"; then
      python="$(command -v "$candidate")"
      break
    fi
  done
fi
if [ -z "$python" ]; then
  echo "faultfirst: no Python 3.11 or newer in this image; installing Ubuntu's python3.11"
  apt_install python3.11 python3-pip
  python="$(command -v python3.11)"
fi
if ! recent_enough "$python"; then
  echo "faultfirst: $python is older than Python 3.11, which faultfirst needs" >&2
  exit 1
fi
if ! "$python" -m pip --version >/dev/null 2>&1; then
  apt_install python3-pip
fi

# The image is the grader's alone, so pip may install into its Python even where Ubuntu marks that
# Python as managed by apt (24.04 and later); as root, pip's warning about root is noise here.
export PIP_BREAK_SYSTEM_PACKAGES=1 PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
"$python" -m pip install --quiet --no-input --requirement "$source/requirements.txt"

# run_autograder grades with this very Python.
printf '%s\n' "$python" >"$source/faultfirst-python"

# Graded apps run as other users (see harness/hosting/isolation.py): none of them may read the
# grader, its hidden scenarios above all.
chmod -R go-rwx "$source"

cd "$source/faultfirst"
"$python" -m harness.engines.autograder --root "$root" --check
