# The explainer's plans for the ltx2 backend, made on the CPU machine (its captions step needs espeak-ng) with the
# shipped full-size LTX-2.3 configs, then measured on the H200 with --plan-json:
PYTHONPATH=$PWD python -c "
import json
from pathlib import Path
from benchmarks import ltx2_bench_plan as PB
p = PB.demo_plans(Path('generators/ltx2_configs/ltx-2.3').resolve(), [(1080, 1920), (704, 1280)], Path('/tmp/sg_plan'), tiny=False)
Path('benchmarks/results/ltx2_demo_plans_2026-11-30.json').write_text(json.dumps(p, indent=2))"
