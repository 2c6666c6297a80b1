#!/usr/bin/env bash
# Install what resnet.c needs on Debian 12: the compiler, OpenMP, zlib,
# libpng, libjpeg, OpenBLAS (its OpenMP build) and the Fashion-MNIST data
# set. With --test, also Debian's PyTorch and torchvision, which the test
# suite uses as the numerical reference (never at run time). Runs apt-get
# only when something is missing; needs root or sudo for that.
set -euo pipefail

packages=(gcc make libc6-dev zlib1g-dev libpng-dev libjpeg-dev libopenblas-openmp-dev
          dataset-fashion-mnist)
case "${1:-}" in
    "") ;;
    --test) packages+=(python3-torch python3-torchvision) ;;
    *) echo "usage: $0 [--test]" >&2; exit 2 ;;
esac
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
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
