#!/bin/sh
# pip install inside the image build, trusting docker/certs/*.crt when there is one (a TLS-inspecting proxy).
set -e
cert=$(ls /opt/ect-certs/*.crt 2>/dev/null | head -n 1 || true)
if [ -n "$cert" ]; then export PIP_CERT="$cert"; fi
exec /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check "$@"
