#!/usr/bin/env bash
# Installs perception3d and everything it needs on a fresh Debian/Ubuntu machine (no GPU needed).
# - libusb-1.0-0 / libgomp1: open3d (open3d-cpu) cannot be imported without them.
# - g++: builds the compiled CPU rasterizer on first use (perception3d/rendering/rasterize_cpu.py).
# - torch is installed first and pinned (==2.13.0) so that pip takes the CPU wheel, never a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0' || ! ldconfig -p 2>/dev/null | grep -q 'libgomp.so.1' \
   || ! command -v g++ >/dev/null; then
  SUDO=""; [ "$(id -u)" != "0" ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libusb-1.0-0 libgomp1 g++ >/dev/null
fi
python -m pip install -q --disable-pip-version-check "torch==2.13.0"
python -m pip install -q --disable-pip-version-check -e ".[${EXTRAS:-dev}]"
# lpips is only the reference implementation for our LPIPS test; --no-deps keeps it from pulling torchvision
# (whose registry build drags in a CUDA torch).
python -m pip install -q --disable-pip-version-check --no-deps "lpips==0.1.4"
