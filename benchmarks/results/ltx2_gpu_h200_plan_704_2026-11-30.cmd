# 2026-11-30, nvidia-h200-x2, GPU 0 alone (torch 2.11.0+cu130, diffusers 0.42.1), random full-size LTX-2.3 bf16.
# In .bench/call_g.sh, after cp_bench (the model built in the same call):
CUDA_VISIBLE_DEVICES=0 python3 -u benchmarks/ltx2_gpu_bench.py --sections plan --model-dir /tmp/m \
  --plan-json benchmarks/results/ltx2_demo_plans_2026-11-30.json --plan-sizes 704x1280 --plan-max-lengths 3 --work /tmp/w0 \
  --out ltx2_gpu_h200_plan_704_2026-11-30.json                                             # rc 0, 88 s
# Result: passes measured at 121, 201 and 265 frames (19 other lengths interpolated), distilled 372 GPU-s = 2.12 GPU-s
# per output second (EXTRAPOLATED: 8 stage-1 passes from 1), dev 2,484 GPU-s = 14.19; load + prompts 19.6 s.
