#!/usr/bin/env bash
# Pack what a bare GPU machine lacks (Ray, PyAV, diffusers, pydantic, ...) into ONE xz archive of installed files,
# small enough for a device call that carries at most 64 MiB: Ray's 72 MB wheel alone is over it, but without
# ray/jars (Java), RLlib, Tune, Train, Serve and Data, and xz-compressed with the rest, everything is ~56 MB.
#
#   bash benchmarks/pack_device_site.sh .bench/site312.tar.xz      # here (any machine with pip and network to PyPI)
#   mkdir -p /tmp/site && tar xJf .bench/site312.tar.xz -C /tmp/site && export PYTHONPATH=/tmp/site:$PWD   # there
#
# Built for CPython 3.12 on x86-64 Linux (the device image's Python); the device already has torch, numpy, scipy,
# msgpack, protobuf, aiohttp, grpcio, pyyaml, click, filelock, requests, peft and transformers.
set -euo pipefail
out=${1:?usage: pack_device_site.sh OUT.tar.xz}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${platforms[@]}" -d "$work/wheels" \
    ray==2.52.1 diffusers==0.42.1 av==18.1.0 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 \
    typing-inspection==0.4.5 pydub==0.25.1 pyloudnorm==0.2.0 soundfile==0.14.0 cffi==2.1.1 pycparser==3.12 \
    webrtcvad-wheels==2.0.14.post1 silero-vad==6.2.3 jsonschema referencing rpds-py jsonschema-specifications
python3 -m pip install -q --no-deps --no-compile --ignore-requires-python --target "$work/site" --python-version 3.12 --implementation cp \
    "${platforms[@]}" --only-binary=:all: "$work"/wheels/*.whl
# Not used on the device: Ray's Java jars, libraries and dashboard web build (the pool starts Ray without the
# dashboard), and silero-vad's ONNX variants (segmenters/vad/silero.py loads silero_vad.jit).
rm -rf "$work"/site/ray/{jars,rllib,tune,train,serve,data} "$work/site/ray/dashboard/client/build" "$work/site/bin"
find "$work/site/silero_vad/data" -name '*.onnx' -delete
mkdir -p "$(dirname "$out")"
tar cf - -C "$work/site" . | xz -T0 -6 > "$out"
ls -l "$out"
