# 2026-11-30, nvidia-h200-x2 (2 NVIDIA H200; torch 2.11.0+cu130, diffusers 0.42.1, torchao 0.17.0), random full-size
# LTX-2.3 bf16 weights. One device call (509 s; 544 s held), the script .bench/call_a.sh:
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl .whl/speed/*.whl
export PYTHONPATH=/tmp/site:$PWD
python3 benchmarks/ltx2_gpu_bench.py --sections build --model-dir /tmp/m --work /tmp/wb          # done at 122 s
# then both at once, one per GPU, each under `timeout -k 5 -s INT 453`:
CUDA_VISIBLE_DEVICES=0 python3 benchmarks/ltx2_gpu_bench.py --sections options --model-dir /tmp/m \
  --options bf16,tiles,fp8+compile+tiles --tile-px 1088 --work /tmp/w0 --out ltx2_gpu_h200_options_tiles_2026-11-30.json
CUDA_VISIBLE_DEVICES=1 python3 benchmarks/ltx2_gpu_bench.py --sections plan --model-dir /tmp/m \
  --plan-json benchmarks/results/ltx2_demo_plans_2026-11-30.json --plan-sizes 1088x1920 --plan-options fp8+compile+tiles \
  --tile-px 1088 --plan-max-lengths 5 --work /tmp/w1 --out ltx2_gpu_h200_plan_tiles_2026-11-30.json
# Both finished (all done at 509 s). The .log files are the two processes' output without the weight-loading progress bars.
# The two processes ran at once on one host (32 CPU cores shared): the plan run's stage-1 pass times (0.97-1.42 s) are
# higher than the options run's (1.07 s at 241 frames) and than the earlier plan_fp8 run's (0.48 s at 121 frames); the plan
# multiplies them by 8, so its figure errs high.
