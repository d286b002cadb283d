# 2026-11-30, nvidia-h200-x2 (torch 2.11.0+cu130, diffusers 0.42.1, peft 0.21.0, torchao 0.17.0), two device calls.
# setup, at the start of each call (wheels carried in .whl/):
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl .whl/speed/*.whl && export PYTHONPATH=/tmp/site:$PWD
P="python3 -m pytest -m gpu -q -rA -p no:cacheprovider --durations=0"
# call 1 (limit 555 s), both at once:
CUDA_VISIBLE_DEVICES=0 $P tests/generators/test_ltx2_speed.py        # compile (guided dev recipe) PASSED in 383 s: 3.05e-3, 51.1 dB; cut during the next test
CUDA_VISIBLE_DEVICES=1 $P tests/generators/test_ltx2_tiles.py        # one-tile 0 / inf, 2x2 7.17e-3 / 49.7 dB; cut during fp8+compile+2x2 (then guided)
CUDA_VISIBLE_DEVICES=1 python3 -X faulthandler .bench/compile_variant.py stg-only /tmp/cv   # compile vs eager, cond+STG passes: 3.1e-3, 51.0 dB, 121 s
# (cfg-only was cut by the limit.) The guided compile that aborted once before ("FakeTensorMode ... already exists") did not abort in either run.
# call 2 (limit 530 s), after the compiled combinations were made unguided (tests/generators/isolated.py UNGUIDED):
CUDA_VISIBLE_DEVICES=0 $P tests/generators/test_ltx2_speed.py -k "compile and unguided"   # 2 passed in 380 s
CUDA_VISIBLE_DEVICES=1 $P tests/generators/test_ltx2_speed.py -k "not compile"            # 3 passed, 2 skipped (sageattention, kernels not installed)
CUDA_VISIBLE_DEVICES=1 $P tests/generators/test_ltx2_tiles.py -k fp8                       # 1 passed: 1.45e-2, 46.8 dB
# Every GPU test of test_ltx2_speed.py and test_ltx2_tiles.py passed at least once on the H200; the sage rows skip without their packages.
