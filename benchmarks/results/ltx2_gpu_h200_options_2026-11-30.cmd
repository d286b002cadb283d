# see ltx2_gpu_h200_speed_2026-11-30.txt (command 1); stopped at its time limit during fp8+compile
python3 benchmarks/ltx2_gpu_bench.py --sections build,options --options bf16,fp8+compile,compile,attention-native,fp8 --out ltx2_gpu_h200_options_2026-11-30.json
