# 2026-11-30, nvidia-h200-x2 (2 NVIDIA H200; torch 2.11.0+cu130, ray 2.52.1, diffusers 0.42.1), random full-size LTX-2.3
# bf16 weights, at commit 7a6b9c2 (every Ray actor loads the model and encodes the prompts before the first segment).
# One device call (561 s; the script .bench/call_c.sh), after the context-parallel run of cp_segment_h200x2_try2_2026-11-30.cmd:
mkdir -p /tmp/site && tar xJf .bench/site312.tar.xz -C /tmp/site && export PYTHONPATH=/tmp/site:$PWD   # 5 s
python3 benchmarks/ltx2_gpu_bench.py --sections build --model-dir /tmp/m --work /tmp/wb                 # done at 111 s
timeout -k 5 -s INT 303 python3 -u benchmarks/multi_gpu_bench.py --project configs/demo.yaml --gpus 1,2 \
  --chaining bookend --first-s 120 --set generator.model=/tmp/m --set generator.backend=ltx2 --set generator.model_variant=distilled \
  --set video.width=384 --set video.height=704 --set captions=null --set segmenter.vad=webrtc --set export.x264_preset=ultrafast \
  --json-out multi_gpu_h200x2_bookend_2026-11-30.json
# Result (finished at 561 s): the explainer's first 120 s, 8 bookend segments, distilled recipe at 384x704:
#   segments phase 68.88 s on 1 GPU, 36.62 s on 2 (4 segments each): 1.88x; whole command 158.55 -> 122.53 s (1.29x);
#   actor load + prompt encoding 33.2 s (1 GPU), 30.9 / 35.4 s (2 GPUs, in parallel, before the first segment);
#   segment GPU-s 68.84 vs 71.33 (each segment 3.6 % slower with two actors on the host).
