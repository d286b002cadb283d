# see ltx2_gpu_h200_speed_2026-11-30.txt (command 2); stopped at its time limit during lora-fused
python3 benchmarks/ltx2_gpu_bench.py --sections build,options --options lora-unfused,lora-fused --work /tmp/w1 --out ltx2_gpu_h200_options_lora_2026-11-30.json
