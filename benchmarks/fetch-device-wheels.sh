#!/usr/bin/env bash
# Download the wheels benchmarks/device.sh needs on the device machine (benchmarks/device-wheels.txt) into .whl/,
# for python 3.12 on manylinux x86_64 (the pip download command of the device README). Needs PyPI; run it here,
# then name ".whl" in the device call's carry. Two sdist-only packages are built into pure-Python wheels;
# pyautoattack's wheel is rewritten without its examples/ folder (a 42 MB test checkpoint nothing imports).
#
#   bash benchmarks/fetch-device-wheels.sh [DEST]   (default: .whl in the repository root)
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${1:-$REPO/.whl}"
PY="${PYTHON:-python3}"
SDIST_ONLY=" pytorchvideo iopath "
mkdir -p "$DEST"
rm -f "$DEST"/*.whl
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 \
         manylinux2010_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$p")
done
binary=()
built=()
while read -r line; do
  spec="${line%%#*}"
  spec="${spec//[[:space:]]/}"
  [ -n "$spec" ] || continue
  if [[ "$SDIST_ONLY" == *" ${spec%%==*} "* ]]; then built+=("$spec"); else binary+=("$spec"); fi
done <"$REPO/benchmarks/device-wheels.txt"

"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${platforms[@]}" -d "$DEST" "${binary[@]}"
# Pure Python, so a wheel built here by any python 3 installs on the device's 3.12.
"$PY" -m pip wheel -q --no-deps -w "$DEST" "${built[@]}"

"$PY" - "$DEST" <<'PYEOF'
"""Rewrite pyautoattack's wheel without pyautoattack/examples/ (and their RECORD lines)."""
import pathlib, sys, zipfile

for whl in pathlib.Path(sys.argv[1]).glob("pyautoattack-*.whl"):
    tmp = whl.with_suffix(".tmp")
    with zipfile.ZipFile(whl) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            if item.filename.startswith("pyautoattack/examples/"):
                continue
            data = src.read(item)
            if item.filename.endswith(".dist-info/RECORD"):
                data = b"".join(line for line in data.splitlines(keepends=True)
                                if not line.startswith(b"pyautoattack/examples/"))
            dst.writestr(item, data)
    tmp.replace(whl)
PYEOF

count=$(ls "$DEST"/*.whl | wc -l)
want=$(grep -cE '^[A-Za-z]' "$REPO/benchmarks/device-wheels.txt")
[ "$count" -eq "$want" ] || { echo "fetch-device-wheels: $count wheels in $DEST, expected $want" >&2; exit 1; }
du -ch "$DEST"/*.whl | tail -1 | sed "s|total|total in $DEST ($count wheels)|"
