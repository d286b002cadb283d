# 2026-11-30, nvidia-h200-x2, same call as multi_gpu_h200x2_bookend_2026-11-30.cmd, right after the build (fresh machine):
timeout -k 5 -s INT 160 python3 -u benchmarks/cp_bench.py --segment --model /tmp/m --gpus 2 --size 1088x1920 --num-frames 241 \
  --stage1-steps 1 --work /tmp/cpw --out cp_segment.json > cp_segment_h200x2_try2_2026-11-30.log 2>&1
# Stopped by its 160-s limit (rc 124) inside the 2-GPU run (the traceback is where SIGINT landed), so again no output
# difference. Its 1-GPU run repeated the earlier figure: load 24.3 s, segment 46.46 s, stage 2 30.29 s (45.95 / 30.01 s in
# cp_segment_h200x2_2026-11-30.log). On a fresh machine the weights come from disk, not the page cache: the 2-GPU
# generator (rank 0 + a spawned worker, each loading the 22B transformer) needs more than the ~60 s that were left.
