# 2026-11-30, nvidia-h200-x2 (H200s), call 1: the options run before fp8_linears passed set_inductor_config=False to
# torchao (commit dd32a1c). torchao's default switched on Inductor's coordinate-descent tuning for the whole process, and
# fp8+compile's first segment was still tuning when the time limit stopped it. The log lists the options
# bf16, fp8+compile, compile; it ran beside the lora options run (ltx2_gpu_h200_options_lora2), on the other GPU; its
# exact environment prefix and time limit were not recorded. Same setup as the others:
# setup, at the start of every call (wheels carried to the GPU host in .whl/):
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl .whl/speed/*.whl && export PYTHONPATH=/tmp/site:$PWD
python3 benchmarks/ltx2_gpu_bench.py --sections build --model-dir /tmp/m   # random full-size LTX-2.3 weights
python3 -u benchmarks/ltx2_gpu_bench.py --sections options --options bf16,fp8+compile,compile --model-dir /tmp/m --work /tmp/w1 --out opt_fp8.json
