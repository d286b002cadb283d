# 2026-11-30, nvidia-h200-x2 (2 NVIDIA H200; torch 2.11.0+cu130, ray 2.52.1, diffusers 0.42.1), random full-size LTX-2.3
# bf16 weights; actors load before the first segment goes out, each idle actor takes the largest waiting segment
# (commits 7a6b9c2, 5922dd3). One device call (325.6 s; warm machine, /tmp/m from the call before), .bench/call_e.sh:
mkdir -p /tmp/site && tar xJf .bench/site312.tar.xz -C /tmp/site && export PYTHONPATH=/tmp/site:$PWD
python3 benchmarks/ltx2_gpu_bench.py --sections build --model-dir /tmp/m --work /tmp/wb   # 14 s: /tmp/m was still there
python3 -u benchmarks/multi_gpu_bench.py --project configs/demo.yaml --gpus 1,2 \
  --chaining bookend --set generator.model=/tmp/m --set generator.backend=ltx2 --set generator.model_variant=distilled \
  --set video.width=384 --set video.height=704 --set captions=null --set segmenter.vad=webrtc --set export.x264_preset=ultrafast \
  --json-out multi_gpu_h200x2_whole_2026-11-30.json
# Result: the whole 175-s explainer, 13 bookend segments (the cost-aware plan at 384x704), each GPU count from an empty
# cache: segments phase 96.41 s on 1 GPU, 50.74 s on 2 (7 + 6 segments): 1.90x; whole command 177.74 -> 131.40 s (1.35x).
# GPU-s of segments 96.34 vs 96.95 (+0.6 % with two actors on the host); actor load + prompts 29.4 s / 28.1 and 27.3 s.
