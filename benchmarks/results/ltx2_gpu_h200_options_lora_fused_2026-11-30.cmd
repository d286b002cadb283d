# 2026-11-30, nvidia-h200-x2, GPU 0 (torch 2.11.0+cu130, diffusers 0.42.1), random full-size LTX-2.3 bf16 and a random rank-384 stage-2 LoRA.
# In .bench/call_l.sh, right after the model build (GPU 1 ran the dev30 run meanwhile):
python3 benchmarks/ltx2_gpu_bench.py --sections build --model-dir /tmp/m --work /tmp/wb        # 86 s
CUDA_VISIBLE_DEVICES=0 python3 -u benchmarks/ltx2_gpu_bench.py --sections options --options lora-fused --model-dir /tmp/m --work /tmp/w0 \
  --out ltx2_gpu_h200_options_lora_fused_2026-11-30.json                                         # rc 0, 356 s
# 1088x1920, 241 frames, one unguided stage-1 pass + 3 stage-2 passes; lora-unfused (the baseline) runs first in the same process.
# Result: lora-unfused stage 2 32.44 s, wall 40.5 s; lora-fused stage 2 30.06 s (x0.93), wall 37.9 s (x0.94);
# latent rel. error 4.16e-3, PSNR 47.0 dB; peak allocated 97.8 GiB against 74.8 (the fused copy of each LoRA'd weight).
