# 2026-11-30, nvidia-h200-x2, GPU 1 (torch 2.11.0+cu130, diffusers 0.42.1), random full-size LTX-2.3 bf16, no speed options.
# In .bench/call_l.sh, after the model build on GPU 0:
CUDA_VISIBLE_DEVICES=1 python3 -u benchmarks/ltx2_gpu_bench.py --sections run --segments 2 --stage1-steps 30 \
  --num-frames 201 --model-dir /tmp/m --work /tmp/w1 --out ltx2_gpu_h200_dev30_704_2026-11-30.json     # rc 0, 172 s
# Two tail-chained 704x1280 segments of 201 frames, the dev recipe with ALL 30 guided stage-1 steps (4 passes each), timed whole:
# 69.96 and 68.48 s (stage 1 59.30 / 58.67 s = 0.489 s per forward, stage 2 7.50 / 7.37 s), peak 45.8 GiB. MEASURED, not extrapolated.
# The plan section's extrapolation for this length was 121.6 s (0.93 s per "pass": one step timed as a whole stage, at a
# shape first seen in that segment, so a first call x120; see ltx2_gpu_h200_plan_704_timed_2026-11-30.cmd);
# the cost model (generators/ltx2_cost.py) says 68.63 s (stage 1 59.26, stage 2 7.06, decode+io 2.31): within 0.2 %.
