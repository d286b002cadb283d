# see ltx2_gpu_h200_speed_2026-11-30.txt (command 3); stopped at its time limit at 265 frames, before it wrote its JSON:
# ltx2_gpu_h200_plan_2026-11-30.json was rebuilt from its log (121, 201 frames) and run 1's bf16 row (241 frames),
# priced with benchmarks.ltx2_bench_plan.price_plan
python3 benchmarks/ltx2_gpu_bench.py --sections build,plan --plan-max-lengths 3 --plan-json benchmarks/results/ltx2_demo_plans_2026-11-30.json --out ltx2_gpu_h200_plan_2026-11-30.json
