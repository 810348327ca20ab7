#!/usr/bin/env bash
# The packages the GPU machine lacks, as one wheelhouse in ./.whl that fits one device call (≤ 64 MiB),
# bitsandbytes included: shared/device/make_wheelhouse.sh's sets are 41 MiB (core) and 42 MiB (bnb),
# so they needed two calls. Two wheels are slimmed, both losslessly for what runs there: POT's
# compiled modules lose their debug symbols (175 MB → 1 MB for ot/bsp), and bitsandbytes keeps only
# the CUDA 13 libraries the machine's torch (CUDA 13) loads. Deepspeed is left out (`--deepspeed` adds
# it, with the small packages it imports).
# Run from the project root; on the machine, install with the line this prints.
set -euo pipefail
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
rm -rf .whl && mkdir -p .whl
plat="--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64"
# Each package at the version .venv runs (the one CI tests): unpinned, pip took librosa 1.0, which needs
# numpy >= 2.1. A package .venv lacks is taken at its newest.
venv_python=${VENV_PYTHON:-.venv/bin/python}
pins() {
  "$venv_python" - "$@" <<'PY'
import sys
from importlib.metadata import PackageNotFoundError, version
for name in sys.argv[1:]:
    try:
        print(f"{name}=={version(name)}")
    except PackageNotFoundError:
        print(name)
PY
}
get() {  # a wheel that cannot be fetched stops this script here, not an import on the GPU machine
  local specs
  specs=$(pins "$@")
  # shellcheck disable=SC2086
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp $plat -d .whl $specs \
    2> >(grep -v "^WARNING: Location" >&2)
  for name in "$@"; do
    compgen -G ".whl/$(echo "$name" | tr 'A-Z-' 'a-z_')-*.whl" > /dev/null || { echo "no wheel for $name in .whl" >&2; exit 1; }
  done
}
get open_clip_torch ftfy wcwidth pot datasets dill multiprocess laion-clap torchlibrosa librosa soundfile \
    audioread soxr lazy_loader pooch decorator braceexpand webdataset bitsandbytes cffi pycparser platformdirs
if [[ ${1:-} == --deepspeed ]]; then
  get hjson pydantic pydantic-core annotated-types typing-inspection py-cpuinfo einops msgpack ninja
  DS_BUILD_OPS=0 python3 -m pip wheel -q --no-deps --no-build-isolation -w .whl deepspeed 2>/dev/null \
    || DS_BUILD_OPS=0 python3 -m pip wheel -q --no-deps -w .whl deepspeed
fi
slim() {  # wheel, command run inside its unpacked tree
  local wheel=$1 tmp
  tmp=$(mktemp -d)
  python3 -m zipfile -e "$wheel" "$tmp"
  (cd "$tmp" && eval "$2")
  rm "$wheel" && (cd "$tmp" && python3 -m zipfile -c "$OLDPWD/$wheel" ./*) && rm -rf "$tmp"
}
slim "$(ls .whl/pot-*.whl)" 'strip --strip-debug $(find . -name "*.so")'
slim "$(ls .whl/bitsandbytes-*.whl)" 'find . -name "libbitsandbytes_cuda*.so" ! -name "*cuda13*" -delete'
du -sh .whl
echo 'In the device command (carry: [".whl"]), start with:'
echo '  for w in .whl/*.whl; do python3 -m zipfile -e $w /tmp/site; done; export PYTHONPATH=/tmp/site:$PWD;'
