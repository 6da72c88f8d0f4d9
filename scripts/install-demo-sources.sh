#!/usr/bin/env bash
# Install / fetch the Debian sources of the offline demo benchmark (rlbind_bench/data/demo/).
#
#   bash scripts/install-demo-sources.sh [CACHE_DIR]
#
# CACHE_DIR defaults to ${XDG_CACHE_HOME:-$HOME/.cache}/rlbind-bench/sources (the builder's default).
# Idempotent: installed tools and already unpacked packages are skipped.
#  - installs the TTS engines espeak-ng, flite and festival with five Festival voices (apt-get install
#    --no-install-recommends; sudo when not root);
#  - downloads opencv-doc, dataset-fashion-mnist, asterisk-core-sounds-{en,es,fr,it,ru}-wav (test speakers) and
#    asterisk-prompt-es-co, asterisk-prompt-fr-armelle, asterisk-prompt-it-menardi-wav (validation speakers) with
#    `apt-get download` into CACHE_DIR/debs (no install, so none of their dependencies) and unpacks only the files
#    the builder reads (the members `dpkg -x` would write: digits, letters, Fashion-MNIST's idx files) into
#    CACHE_DIR/<package>/, marked done by CACHE_DIR/<package>/.extracted: the .deb's name, then the member
#    patterns, one a line. A package whose marker lists other patterns (an older cache, e.g. digits only) is
#    unpacked again; a marker of the older one-line form is kept when every pattern already has files.
# Keep the package list and member patterns in step with TTS_PACKAGES / DATA_PACKAGES in rlbind_bench/data/demo/sources.py.
set -euo pipefail

CACHE="${1:-${XDG_CACHE_HOME:-$HOME/.cache}/rlbind-bench/sources}"
TOOLS=(espeak-ng flite festival)
VOICE_PACKAGES=(festvox-italp16k festvox-itapc16k festvox-ru festvox-kdlpc16k festvox-us-slt-hts)
LANGS=(en es fr it ru)

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=(sudo); fi
fi
need_root() {  # need_root WHAT: one line and exit 1 when apt-get cannot run as root
  if [ "$(id -u)" -ne 0 ] && [ "${#SUDO[@]}" -eq 0 ]; then
    echo "install-demo-sources: installing $1 needs root (no sudo here): run this script as root" >&2
    exit 1
  fi
}
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
export DEBIAN_FRONTEND=noninteractive
APT_UPDATED=0
apt_update() {
  if [ "$APT_UPDATED" -eq 0 ]; then
    "${SUDO[@]}" apt-get update -qq
    APT_UPDATED=1
  fi
}

# 1. TTS engines.
missing=()
for tool in "${TOOLS[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
for pkg in "${VOICE_PACKAGES[@]}"; do
  installed "$pkg" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  need_root "${missing[*]}"
  echo "installing ${missing[*]}"
  "${SUDO[@]}" apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null \
    || { apt_update; "${SUDO[@]}" apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
fi

# 2. Data packages: download the .deb, unpack the needed members.
mkdir -p "$CACHE/debs"
stamp_ok() {  # stamp_ok DEST PATTERN...: the marker lists exactly these patterns (any order)
  local dest="$1"; shift
  [ -f "$dest/.extracted" ] || return 1
  if [ "$(wc -l < "$dest/.extracted")" -le 1 ]; then  # older marker (the .deb's name only)
    local pattern
    for pattern in "$@"; do compgen -G "$dest/$pattern" >/dev/null || return 1; done
    return 0
  fi
  [ "$(tail -n +2 "$dest/.extracted" | LC_ALL=C sort)" = "$(printf '%s\n' "$@" | LC_ALL=C sort)" ]
}
fetch() {  # fetch PACKAGE PATTERN...
  local pkg="$1"; shift
  local dest="$CACHE/$pkg"
  if stamp_ok "$dest" "$@"; then
    echo "$pkg: already in $dest"
    return 0
  fi
  local deb
  deb="$(ls "$CACHE/debs/${pkg}"_*.deb 2>/dev/null | tail -n 1 || true)"
  if [ -z "$deb" ]; then
    echo "$pkg: apt-get download"
    (cd "$CACHE/debs" && apt-get download "$pkg" >/dev/null 2>&1) \
      || { apt_update; (cd "$CACHE/debs" && apt-get download "$pkg" >/dev/null); }
    deb="$(ls "$CACHE/debs/${pkg}"_*.deb | tail -n 1)"
  fi
  local tmp="$CACHE/.$pkg.tmp-$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  local members=()
  for pattern in "$@"; do members+=("./$pattern"); done
  dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp" --wildcards "${members[@]}"
  { basename "$deb"; printf '%s\n' "$@"; } > "$tmp/.extracted"
  rm -rf "$dest"
  mv "$tmp" "$dest"
  echo "$pkg: unpacked into $dest"
}

fetch opencv-doc usr/share/doc/opencv-doc/examples/data/digits.png usr/share/doc/opencv-doc/copyright
fetch dataset-fashion-mnist 'usr/share/datasets/fashion-mnist/*-ubyte.gz' usr/share/doc/dataset-fashion-mnist/copyright
for lang in "${LANGS[@]}"; do
  pkg="asterisk-core-sounds-$lang-wav"
  fetch "$pkg" 'usr/share/asterisk/sounds/*/digits/[0-9].wav' 'usr/share/asterisk/sounds/*/letters/[a-z].wav' \
    "usr/share/doc/$pkg/copyright"
done
fetch asterisk-prompt-es-co 'usr/share/asterisk/sounds/es/digits/[0-9].gsm' usr/share/doc/asterisk-prompt-es-co/copyright
fetch asterisk-prompt-fr-armelle 'usr/share/asterisk/sounds/fr/digits/[0-9].gsm' \
  'usr/share/asterisk/sounds/fr/letters/[a-z].gsm' usr/share/doc/asterisk-prompt-fr-armelle/copyright
fetch asterisk-prompt-it-menardi-wav 'usr/share/asterisk/sounds/it_IT_f_Menardi/digits/[0-9].wav' \
  'usr/share/asterisk/sounds/it_IT_f_Menardi/letters/[a-z].wav' usr/share/doc/asterisk-prompt-it-menardi-wav/copyright
echo "demo sources ready in $CACHE"
