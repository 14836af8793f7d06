# Shared by the scripts: where the environments live and how to make them (uv, bootstrapped into
# .venvs/bootstrap from PyPI if it is not on PATH). Source it; do not run it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENVS="$ROOT/.venvs"
PY="${PYTHON:-python3}"
# uv verifies TLS with the system's certificate store (where a machine adds its own authorities).
export UV_SYSTEM_CERTS=1
if [ -z "${SSL_CERT_FILE:-}" ] && [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  export SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
fi

uv_bin() {
  if command -v uv >/dev/null 2>&1; then command -v uv; return; fi
  if [ ! -x "$VENVS/bootstrap/bin/uv" ]; then
    "$PY" -m venv "$VENVS/bootstrap" >&2
    "$VENVS/bootstrap/bin/pip" install --quiet --disable-pip-version-check uv >&2
  fi
  echo "$VENVS/bootstrap/bin/uv"
}

# make_env NAME SPEC...: create .venvs/NAME (Python 3.11+) and install SPEC... into it.
make_env() {
  local name="$1"; shift
  local uv; uv="$(uv_bin)"
  if [ ! -x "$VENVS/$name/bin/python" ]; then
    "$uv" venv --quiet --python "$PY" "$VENVS/$name"
  fi
  "$uv" pip install --quiet --python "$VENVS/$name/bin/python" "$@"
}
