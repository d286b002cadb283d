# 2026-11-30, nvidia-h200-x2 (2 NVIDIA H200, NVLink; torch 2.11.0+cu130, diffusers 0.42.1), random full-size LTX-2.3 bf16.
# The call began with the packages carried as one xz archive (Ray, PyAV, diffusers, pydantic, ...; .bench/site312.tar.xz):
#   mkdir -p /tmp/site && tar xJf .bench/site312.tar.xz -C /tmp/site && export PYTHONPATH=/tmp/site:$PWD
#   python3 benchmarks/ltx2_gpu_bench.py --sections build --model-dir /tmp/m --work /tmp/wb        # 111 s with the unpack
timeout -k 5 -s INT 165 python3 -u benchmarks/cp_bench.py --segment --model /tmp/m --gpus 2 --size 1088x1920 \
    --num-frames 241 --stage1-steps 1 --work /tmp/cpw --out cp_segment.json > cp_segment.log 2>&1
# It was stopped by its 165-s limit (rc 137) after both timed segments had printed their rows, while it decoded both
# clips for the PSNR: so no JSON, and no latent error or PSNR was recorded. (cp_bench now prints and saves the
# latent error before that decode.) The next command of that call, the Ray bookend run
#   python3 benchmarks/multi_gpu_bench.py --project configs/demo.yaml --gpus 1,2 --chaining bookend --first-s 90 \
#     --set generator.model=/tmp/m --set generator.backend=ltx2 --set generator.model_variant=distilled \
#     --set video.width=384 --set video.height=704 --set captions=null --set segmenter.vad=webrtc --set export.x264_preset=ultrafast
# was cut off when the session's device time ran out, before it printed anything.
