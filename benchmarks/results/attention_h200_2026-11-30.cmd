# 2026-11-30, nvidia-h200-x2, GPU 1 (torch 2.11.0+cu130; sageattention 1.0.6 installed --no-deps from its PyPI wheel,
# pure Python + Triton). In .bench/call_g.sh, while GPU 0 built the random model:
CUDA_VISIBLE_DEVICES=1 python3 -u benchmarks/attention_bench.py --out attention_h200_2026-11-30.json      # rc 0, ~44 s
# Result: 32 heads x 128, bf16, one attention call at LTX-2.3's video token counts for 1088x1920: cuDNN SDPA 565-637
# TFLOP/s; flash SDPA 352-361 (x0.55-0.64 of cuDNN); sageattention 1.0.6's int8 QK / fp16 PV Triton kernel 409-460
# (x0.64-0.81 of cuDNN, relative error 1.4e-2 against it). The only 8-bit attention that installs from a registry
# without compiling is slower than the default on an H200, so no `attention` option is built on it.
