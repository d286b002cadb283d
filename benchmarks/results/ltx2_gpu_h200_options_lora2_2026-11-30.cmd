# 2026-11-30, nvidia-h200-x2 (H200s), call 1, GPU 0. Stopped by its time limit after lora-fused's measured segment,
# before its row was saved: the JSON holds bf16 and lora-unfused; lora-fused's wall (37.8 s) is from the log.
# setup, at the start of every call (wheels carried to the GPU host in .whl/):
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl .whl/speed/*.whl && export PYTHONPATH=/tmp/site:$PWD
python3 benchmarks/ltx2_gpu_bench.py --sections build --model-dir /tmp/m   # random full-size LTX-2.3 weights
CUDA_VISIBLE_DEVICES=0 timeout -s INT 477 python3 -u benchmarks/ltx2_gpu_bench.py --sections options --options bf16,lora-unfused,lora-fused --model-dir /tmp/m --work /tmp/w0 --out opt_lora.json
