#!/usr/bin/env bash
# Install Neovim from the distribution's apt repository if `nvim` is not already on PATH.
# Debian 12 ships 0.7.2, the oldest version the plugin supports.
set -euo pipefail

if command -v nvim >/dev/null; then
  nvim --version | head -n 1
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "install-nvim.sh: no nvim and no apt-get; install Neovim >= 0.7 yourself" >&2
  exit 1
fi
SUDO=""
if [[ "$(id -u)" -ne 0 ]]; then
  if ! command -v sudo >/dev/null; then
    echo "install-nvim.sh: need root (or sudo) to run apt-get" >&2
    exit 1
  fi
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends neovim
nvim --version | head -n 1
