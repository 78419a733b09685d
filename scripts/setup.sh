#!/usr/bin/env bash
# One-shot set-up for a fresh machine: virtual environment, Python packages, a CJK font for the
# charts and, with --test, Debian's Chromium for the browser test. Safe to run again: each step
# is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

want_browser=0
[ "${1:-}" = "--test" ] && want_browser=1

PY=${PYTHON:-python3}
# A .venv without a working pip is half made: without python3-venv, `python3 -m venv` writes
# .venv/bin/python and then fails at ensurepip. It is made again rather than skipped (one that
# got as far as uv or a finished install is kept).
venv_ready() {
  [ -x .venv/bin/python ] || return 1
  [ -x .venv/bin/uv ] || [ -f .venv/.marginbot-installed ] || .venv/bin/python -m pip --version >/dev/null 2>&1
}
if [ -e .venv ] && ! venv_ready; then
  echo "setup: .venv is incomplete (no working pip); making it again"
  rm -rf .venv
fi
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PY --version)"
  if ! "$PY" -m venv .venv; then
    rm -rf .venv
    echo "setup: '$PY -m venv' failed. On Debian or Ubuntu install the venv module first:" >&2
    echo "setup:   sudo apt-get install python3-venv   (or python3.X-venv for your Python 3.X)" >&2
    exit 1
  fi
fi
if [ ! -x .venv/bin/uv ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check uv
fi
# The versions the project was tested with (requirements.lock, compiled from pyproject.toml) are the
# ones a fresh machine gets. Reinstall only when either file changed since the last install.
stamp=.venv/.marginbot-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ requirements.lock -nt "$stamp" ]; then
  echo "setup: installing Python packages (versions from requirements.lock)"
  .venv/bin/uv pip install -q --python .venv/bin/python -e ".[dev]" --constraint requirements.lock
  touch "$stamp"
fi

apt_install() {
  # System packages need root and apt; without them, say what is missing and go on.
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "setup: apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null 2>&1 || {
      apt-get update -q >/dev/null 2>&1 || true
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null
    }
  else
    echo "setup: cannot install $* (needs root and apt-get); install it by hand" >&2
  fi
}

# Charts label in Chinese: they need a real CJK font (Noto Sans CJK).
if ! ls /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc >/dev/null 2>&1; then
  apt_install fonts-noto-cjk
  rm -rf "${HOME}/.cache/matplotlib" 2>/dev/null || true
fi

if [ "$want_browser" = 1 ] && [ ! -x /usr/bin/chromium ]; then
  apt_install chromium
fi
# The bot's messages carry emoji; without this font the browser test's screenshots show empty boxes.
if [ "$want_browser" = 1 ] && [ ! -f /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ]; then
  apt_install fonts-noto-color-emoji
fi
