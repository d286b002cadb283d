# 2026-11-30, nvidia-h200-x2 (H200s), call 2, GPU 1, run concurrently with ltx2_gpu_h200_plan_fp8_2026-11-30 on GPU 0.
# Stopped by its time limit during compile's measured segment ('compile' has only its warm-up in the log; 'fp8' alone not
# reached): the JSON holds bf16 and fp8+compile. TORCH_LOGS=recompiles prints every recompile and its guard.
# setup, at the start of every call (wheels carried to the GPU host in .whl/):
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl .whl/speed/*.whl && export PYTHONPATH=/tmp/site:$PWD
python3 benchmarks/ltx2_gpu_bench.py --sections build --model-dir /tmp/m   # random full-size LTX-2.3 weights
CUDA_VISIBLE_DEVICES=1 TORCH_LOGS=recompiles timeout -s INT 475 python3 -u benchmarks/ltx2_gpu_bench.py --sections options --options bf16,fp8+compile,compile,fp8 --model-dir /tmp/m --work /tmp/w1 --out opt_fp8.json
