# 2026-11-30, nvidia-h200-x2 (2 NVIDIA H200, NVLink; torch 2.11.0+cu130, diffusers 0.42.1), random full-size LTX-2.3 bf16.
# One device call (.bench/call_g.sh, 555 s): wheels from .whl/, the model built at 95 s, then right after it (weights in the
# page cache, which is what the two earlier tries lacked):
python3 -u benchmarks/cp_bench.py --segment --model /tmp/m --gpus 2 --size 1088x1920 --num-frames 241 \
  --stage1-steps 1 --work /tmp/cpw --out cp_segment_h200x2_diff_2026-11-30.json            # rc 0, 177 s
# Result: one 1088x1920, 241-frame tail segment (25 context frames, 1 guided stage-1 step = 4 passes, 3 stage-2 passes),
# the same seeds: 1 GPU 46.07 s (stage 2 30.57 s), 2 GPUs 30.27 s (stage 2 16.76 s): 1.52x segment, 1.76x denoise,
# 1.82x stage 2; final latents of 2 GPUs against 1: relative error 0 (bit-identical), decoded frames PSNR inf.
