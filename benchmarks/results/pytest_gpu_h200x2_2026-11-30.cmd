# 2026-11-30, nvidia-h200-x2 (torch 2.11.0+cu130, diffusers 0.42.1, torchao 0.17.0): `pytest -m gpu` on the GPU tests.
# Try 1 (.bench/call_d.sh): `pytest -m gpu tests/generators` stopped at collection: test_ltx2_parity.py imports ltx-core
#   at module level and the machine has no parity extra (since commit 776b32a a marker-selected run leaves that file out).
# Try 2 (.bench/call_g.sh, GPU 1 while GPU 0 built the model): killed by its 240-s limit after 6 passes (no summary).
# Try 3 (.bench/call_i.sh, a fresh machine, the last 200 s of device time), three processes at once:
CUDA_VISIBLE_DEVICES=0 timeout -k 15 -s INT 185 python3 -m pytest -m gpu -q -rA -s --durations=0 tests/generators/test_ltx2_speed.py
CUDA_VISIBLE_DEVICES=1 timeout -k 15 -s INT 185 python3 -m pytest -m gpu -q -rA -s --durations=0 tests/generators/test_ltx2_tiles.py
CUDA_VISIBLE_DEVICES=1 timeout -k 15 -s INT 185 python3 -m pytest -m gpu -q -rA -s --durations=0 tests/generators/test_ltx2.py
# Result (pytest_gpu_h200x2_2026-11-30.log):
# - test_ltx2.py: 6 passed in 31 s (offload none/model/sequential/sequential+fp8_storage, GPU matches CPU, host copy).
# - test_ltx2_tiles.py: one tile bit-identical to untiled (error 0, PSNR inf), 2x2 tiles 7.17e-3 / 49.7 dB: passed;
#   fp8+compile+2x2 tiles was still compiling (tiny model, guided passes, 3 processes compiling on 32 cores) at the limit.
# - test_ltx2_speed.py: the process aborted in its first test (compile: blocks on the tiny model, guided dev recipe):
#   c10::Error "trying to set the current FakeTensorMode, but one already exists" inside Dynamo's fake-tensor tracing.
#   Not reproduced on the CPU with torch 2.13 (see the closing note); the full-size unguided compile runs of the same
#   torch on the same machine kind were fine.
