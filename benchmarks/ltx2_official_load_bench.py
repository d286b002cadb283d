"""Loading a Lightricks single-file checkpoint: time, and host memory against the weights' own size (CPU).

Writes an LTX-2.3 single file with the released architecture at full width
(the real config from ``generators/ltx2_configs/ltx-2.3/ltx_core_config.json``:
4096-wide transformer, the full video and audio VAEs, the 188,160 → 4096/2048
text projection) but only ``--layers`` transformer and connector blocks, so it
fits a small machine; the tensors' values are left uninitialised (what is
measured does not depend on them). Then, in a fresh process, it loads the file
through longtake's production path (``inspect_official`` + ``build_pipeline`` +
the text connectors, bfloat16, CPU) and prints:

- the file size and the bytes of the weights loaded,
- the load time,
- the process's peak resident memory above its level after the imports, as a
  multiple of the weights' bytes, right after loading (bfloat16 tensors read
  from the file on the CPU stay memory-mapped: near 0) and after every weight
  has been read once, as moving the model to the GPU does (about 1.0: each
  tensor is read once into its place, no converted copy in memory; none is
  ever written to disk).

Run: ``.venv/bin/python benchmarks/ltx2_official_load_bench.py [--layers 2] [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def write_checkpoint(folder: Path, layers: int) -> Path:
    """An official-layout file with the real 2.3 architecture and ``layers`` blocks; shapes from ltx-core's own classes."""
    import torch
    from safetensors.torch import save_file

    from generators.ltx2_official import CONFIG_DIR
    from ltx_core.model.audio_vae.model_configurator import AudioDecoderConfigurator, AudioEncoderConfigurator
    from ltx_core.model.transformer.model_configurator import LTXModelConfigurator
    from ltx_core.model.video_vae.model_configurator import VideoDecoderConfigurator, VideoEncoderConfigurator
    from ltx_core.text_encoders.gemma.embeddings_connector import AudioEmbeddings1DConnectorConfigurator, Embeddings1DConnectorConfigurator

    config = json.loads((CONFIG_DIR / "ltx_core_config.json").read_text())
    config["transformer"].update(num_layers=layers, connector_num_layers=layers)
    config.pop("vocoder", None)  # never loaded by longtake; leaving it out keeps the file small
    tensors: dict[str, torch.Tensor] = {}

    def add(prefix: str, configurator, skip: tuple[str, ...] = ()) -> None:
        with torch.device("meta"):
            module = configurator.from_config(config)
        for name, value in module.state_dict().items():
            if not name.startswith(skip):
                tensors[prefix + name] = torch.empty(value.shape, dtype=torch.bfloat16)

    stats = ("per_channel_statistics.",)
    add("model.diffusion_model.", LTXModelConfigurator)
    add("model.diffusion_model.video_embeddings_connector.", Embeddings1DConnectorConfigurator)
    add("model.diffusion_model.audio_embeddings_connector.", AudioEmbeddings1DConnectorConfigurator)
    add("vae.encoder.", VideoEncoderConfigurator, stats)
    add("vae.decoder.", VideoDecoderConfigurator, stats)
    add("audio_vae.encoder.", AudioEncoderConfigurator, stats)
    add("audio_vae.decoder.", AudioDecoderConfigurator, stats)
    for section, channels in (("vae", 128), ("audio_vae", 128)):
        for stat in ("mean-of-means", "std-of-means"):
            tensors[f"{section}.per_channel_statistics.{stat}"] = torch.ones(channels, dtype=torch.bfloat16)
    t = config["transformer"]
    flat = 3840 * 49  # Gemma-3 12B: 3840 wide, 48 layers + embeddings
    for side, width in (("video", t["num_attention_heads"] * t["attention_head_dim"]), ("audio", t["audio_num_attention_heads"] * t["audio_attention_head_dim"])):
        tensors[f"text_embedding_projection.{side}_aggregate_embed.weight"] = torch.empty(width, flat, dtype=torch.bfloat16)
        tensors[f"text_embedding_projection.{side}_aggregate_embed.bias"] = torch.empty(width, dtype=torch.bfloat16)
    path = folder / "ltx-2.3-22b-dev.safetensors"
    save_file(tensors, str(path), metadata={"config": json.dumps(config)})
    # A Gemma-3 12B folder as far as the checks read it (its config); the text encoder itself is not loaded here.
    gemma = folder / "gemma-3-12b-it-qat-q4_0-unquantized"
    gemma.mkdir(exist_ok=True)
    (gemma / "config.json").write_text(json.dumps({"model_type": "gemma3", "architectures": ["Gemma3ForConditionalGeneration"],
                                                   "text_config": {"hidden_size": 3840, "num_hidden_layers": 48}}))  # fmt: skip
    (gemma / "tokenizer.json").write_text("{}")
    save_file({"placeholder": torch.zeros(1)}, str(gemma / "model.safetensors"))
    return path


def measure(checkpoint: Path) -> dict:
    """In this process: load through the production path, report time and peak RSS above the post-import baseline."""
    import resource

    import torch

    from generators import ltx2_loading as L
    from generators import ltx2_official as O

    def peak_bytes() -> int:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    baseline = peak_bytes()
    started = time.perf_counter()
    info = L.inspect_official(checkpoint, text_encoder=str(checkpoint.parent / "gemma-3-12b-it-qat-q4_0-unquantized"), upsampler=None, need_upsampler=False)
    pipe = L.build_pipeline(info, dtype="bfloat16", two_stage=False)
    connectors = O.load_from_checkpoint("connectors", O.read_header(checkpoint), info["connectors"].config, dtype=torch.bfloat16)
    seconds = time.perf_counter() - started
    modules = (pipe.transformer, pipe.vae, pipe.audio_vae, connectors)
    weights = sum(t.numel() * t.element_size() for m in modules for t in (*m.parameters(), *m.buffers()))
    after_load = peak_bytes() - baseline
    # Read every weight once, as moving the model to the GPU does: the mapped pages come in, once.
    started_read = time.perf_counter()
    with torch.no_grad():
        for m in modules:
            for t in (*m.parameters(), *m.buffers()):
                t.sum()  # in its own dtype: no temporary copy of the tensor
    return {
        "load_s": seconds, "read_s": time.perf_counter() - started_read, "weights_bytes": weights, "file_bytes": checkpoint.stat().st_size,
        "peak_above_baseline_bytes": after_load, "peak_after_read_bytes": peak_bytes() - baseline,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=2, help="transformer and connector blocks (the release has 48 and 8)")
    parser.add_argument("--keep", type=Path, default=None, help="write the file here and keep it (default: a temporary folder)")
    parser.add_argument("--measure", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        checkpoint = write_checkpoint(folder, args.layers)
        proc = subprocess.run([sys.executable, __file__, "--measure", str(checkpoint)], capture_output=True, text=True, cwd=ROOT)
        if proc.returncode:
            sys.exit(proc.stderr)
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    gib = 1024**3
    print(f"single file, {args.layers} transformer/connector blocks at full width: {result['file_bytes'] / gib:.2f} GiB on disk")
    print(f"weights loaded (transformer, video VAE, audio VAE, connectors; bf16): {result['weights_bytes'] / gib:.2f} GiB")
    print(f"load time: {result['load_s']:.1f} s")
    print(f"peak host memory above the post-import baseline after loading: {result['peak_above_baseline_bytes'] / gib:.2f} GiB "
          f"= {result['peak_above_baseline_bytes'] / result['weights_bytes']:.2f}x the weights (bf16 tensors stay memory-mapped from the file)")
    print(f"after reading every weight once ({result['read_s']:.1f} s, as a move to the GPU does): {result['peak_after_read_bytes'] / gib:.2f} GiB "
          f"= {result['peak_after_read_bytes'] / result['weights_bytes']:.2f}x the weights")  # fmt: skip


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
