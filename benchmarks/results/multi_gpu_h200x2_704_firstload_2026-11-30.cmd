# 2026-11-30, nvidia-h200-x2 (2 NVIDIA H200; torch 2.11.0+cu130, ray 2.52.1, diffusers 0.42.1), random full-size LTX-2.3
# bf16 weights, BEFORE commit 7a6b9c2: each Ray actor loaded the model and encoded the prompts inside its first segment.
# One device call (504 s), the script .bench/call_b.sh:
mkdir -p /tmp/site && tar xJf .bench/site312.tar.xz -C /tmp/site && export PYTHONPATH=/tmp/site:$PWD
python3 benchmarks/ltx2_gpu_bench.py --sections build --model-dir /tmp/m --work /tmp/wb   # 37 s: /tmp/m was still there
python3 -u benchmarks/multi_gpu_bench.py --project configs/demo.yaml --gpus 1,2 \
  --chaining bookend --first-s 90 --set generator.model=/tmp/m --set generator.backend=ltx2 --set generator.model_variant=distilled \
  --set video.width=704 --set video.height=1280 --set captions=null --set segmenter.vad=webrtc --set export.x264_preset=ultrafast \
  --json-out multi_gpu_h200x2_704_firstload_2026-11-30.json
# Result: 9 bookend segments (the explainer's first 90 s), segments phase 212.3 s on 1 GPU, 130.1 s on 2 (1.63x); whole
# command 273.5 -> 189.2 s (1.45x). The first segment on each actor took 55-59 s against a mean of 24 s: the model load
# and prompt encoding ran inside it, on both actors at once, so the 2-GPU run did 248 GPU-s of segments against 212.
# That is why commit 7a6b9c2 loads every actor before the first segment goes out.
