#!/usr/bin/env bash
# Install what resnet.c needs on Debian 12: the compiler, OpenMP, zlib,
# libpng, libjpeg, OpenBLAS (its OpenMP build) and the Fashion-MNIST data
# set. Runs apt-get only when something is missing; needs root or sudo for
# that.
set -euo pipefail

packages=(gcc make libc6-dev zlib1g-dev libpng-dev libjpeg-dev libopenblas-openmp-dev
          dataset-fashion-mnist)
missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

echo "installing: ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q "${missing[@]}"
