# 2026-11-30, nvidia-h200-x2 (H200s), call 2, GPU 0, run concurrently with ltx2_gpu_h200_fp8_2026-11-30 on GPU 1.
# The 265-frame row is not a pass time: that shape failed Inductor's 32-bit-indexing guard
# (temb.size()[2]*hidden_states.size()[1] <= 2147483647) and recompiled inside the measured segment.
# setup, at the start of every call (wheels carried to the GPU host in .whl/):
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl .whl/speed/*.whl && export PYTHONPATH=/tmp/site:$PWD
python3 benchmarks/ltx2_gpu_bench.py --sections build --model-dir /tmp/m   # random full-size LTX-2.3 weights
CUDA_VISIBLE_DEVICES=0 TORCH_LOGS=recompiles timeout -s INT 475 python3 -u benchmarks/ltx2_gpu_bench.py --sections plan --plan-json benchmarks/results/ltx2_demo_plans_2026-11-30.json --plan-sizes 1088x1920 --plan-options fp8+compile --plan-max-lengths 3 --model-dir /tmp/m --work /tmp/w0 --out plan_fp8.json
