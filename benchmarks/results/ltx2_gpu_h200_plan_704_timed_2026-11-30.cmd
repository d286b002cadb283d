# 2026-11-30, nvidia-h200 (one GPU, fresh machine; torch 2.11.0+cu130, diffusers 0.42.1), random full-size LTX-2.3 bf16.
# .bench/call_m.sh: build, then the plan section with ONE stage-1 step and ModelTimer timing that step's transformer
# forward alone (the code between 052432a and the commit that saved this file; the plan section now runs 2 steps).
python3 benchmarks/ltx2_gpu_bench.py --sections build --model-dir /tmp/m --work /tmp/wb                                   # 91 s
timeout -s INT 110 python3 -u benchmarks/ltx2_gpu_bench.py --sections plan --model-dir /tmp/m \
  --plan-json benchmarks/results/ltx2_demo_plans_2026-11-30.json --plan-sizes 704x1280 --plan-max-lengths 2 --work /tmp/w0 \
  --out ltx2_gpu_h200_plan_704_timed_2026-11-30.json                                                                       # rc 0, 81 s
# Result: stage-1 forward alone 0.575 s at 121 frames (a shape first seen in that segment) and 0.661 s at 265 frames (the
# warm-up's shape); stage 1 outside its forward: 1 ms. So the earlier one-step "pass" (0.93 s at 201 frames) was not
# stage set-up but a first call at a new shape: the whole 30-step dev segment at 201 frames averaged 0.489 s per
# forward, and scaled by tokens (5,720 -> 7,480) that predicts 0.64 s at 265 frames, matching 0.661.
# Priced (20 of 22 lengths interpolated from 2): distilled 329 GPU-s = 1.88 GPU-s/s, dev 1,863 = 10.65 (EXTRAPOLATED);
# the 121-frame pass carries its first call x8 / x120. Cost model: 294 / 1,511.
