#!/bin/sh
# Installs the worker image's Keras backend (the build arg BACKEND) into /opt/venv, from the requirement file beside
# this script: tensorflow only when the base image lacks it (the official TensorFlow GPU image has it); jax and torch
# always, with Keras.
set -e
backend=${1:-tensorflow}
here=$(dirname "$0")
python=${ECT_VENV_PYTHON:-/opt/venv/bin/python}
case "$backend" in
  tensorflow)
    "$python" -c "import tensorflow" 2>/dev/null || "$here/pip-install.sh" -r "$here/tensorflow-requirement.txt" ;;
  jax|torch)
    "$here/pip-install.sh" -r "$here/$backend-requirement.txt" ;;
  *)
    echo "BACKEND=$backend: expected tensorflow, jax or torch" >&2
    exit 1 ;;
esac
