"""Prompt embeddings for LTX-2.3 and their on-disk cache.

A prompt goes through Gemma-3 (all hidden states) and LTX-2's text connectors;
what the transformer needs is the connectors' output: a video context, an audio
context and an attention mask. That output is what is cached: about 12 MB per
prompt for LTX-2.3 instead of ~385 MB of raw Gemma states, and a cache hit
needs neither Gemma (24 GB) nor the connectors (~7 GB) in memory.

Entries are keyed by sha256(text identity, prompt), where the text identity
names the tokenizer, text encoder and connectors (content identity + dtype), so
a changed prompt or a different text stack is a miss and nothing else is.
A corrupt entry is a warning and a miss, never a crash.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import torch

log = logging.getLogger("longtake." + __name__)  # under "longtake": the CLI shows it as a warning and a --json event

# LTX-2.x encodes every prompt padded to 1024 Gemma tokens (ltx-core and diffusers agree).
MAX_SEQUENCE_LENGTH = 1024


@dataclass(frozen=True)
class PromptEmbeddings:
    """The connectors' output for one prompt, batch 1."""

    video: "torch.Tensor"  # [1, tokens, video context dim]
    audio: "torch.Tensor"  # [1, tokens, audio context dim]
    mask: "torch.Tensor | None"  # [1, tokens], 1 = attend; None: attend to every token (ltx2_speed drops an all-ones mask)

    def to(self, device, dtype) -> "PromptEmbeddings":
        mask = None if self.mask is None else self.mask.to(device)
        return PromptEmbeddings(self.video.to(device, dtype), self.audio.to(device, dtype), mask)


@dataclass
class _Stats:
    encoded: int = 0  # prompts run through the text encoder
    disk_hits: int = 0
    memory_hits: int = 0


class PromptEmbeddingCache:
    """Memory + disk cache of ``PromptEmbeddings`` keyed by (text identity, prompt)."""

    def __init__(self, folder: Path | None, text_identity: str):
        self.folder = Path(folder) if folder is not None else None
        self.text_identity = text_identity
        self._memory: dict[str, PromptEmbeddings] = {}
        self.stats = _Stats()

    def key(self, prompt: str) -> str:
        return hashlib.sha256(f"{self.text_identity}\0{prompt}".encode("utf-8")).hexdigest()

    def path(self, prompt: str) -> Path | None:
        return None if self.folder is None else self.folder / f"{self.key(prompt)}.safetensors"

    def __contains__(self, prompt: str) -> bool:
        return self.get(prompt) is not None

    def get(self, prompt: str) -> PromptEmbeddings | None:
        key = self.key(prompt)
        if key in self._memory:
            self.stats.memory_hits += 1
            return self._memory[key]
        path = self.path(prompt)
        if path is None or not path.is_file():
            return None
        try:
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as fh:
                meta = fh.metadata() or {}
                if meta.get("prompt") != prompt or meta.get("text_identity") != self.text_identity:
                    raise ValueError("entry belongs to another prompt or text model")
                emb = PromptEmbeddings(fh.get_tensor("video"), fh.get_tensor("audio"), fh.get_tensor("mask"))
        except Exception as exc:  # a torn or foreign file must never stop a run
            log.warning("ignoring unreadable prompt-embedding cache entry %s (%s); it will be re-encoded", path, exc)
            return None
        self.stats.disk_hits += 1
        self._memory[key] = emb
        return emb

    def put(self, prompt: str, emb: PromptEmbeddings) -> None:
        cpu = PromptEmbeddings(emb.video.detach().cpu().contiguous(), emb.audio.detach().cpu().contiguous(), emb.mask.detach().cpu().contiguous())
        self._memory[self.key(prompt)] = cpu
        path = self.path(prompt)
        if path is None:
            return
        from safetensors.torch import save_file

        from orchestrator.atomic import atomic_path

        with atomic_path(path, doing=f"save a prompt embedding to {path.parent}",
                         elsewhere="set `workdir:` in the project file to another disk") as tmp:
            save_file({"video": cpu.video, "audio": cpu.audio, "mask": cpu.mask}, str(tmp), metadata={"prompt": prompt, "text_identity": self.text_identity})


def encode_prompt(pipe, prompt: str, *, device, dtype) -> PromptEmbeddings:
    """Run one prompt through the pipeline's Gemma + connectors (both must be loaded)."""
    import torch

    with torch.no_grad():
        raw, raw_mask, _, _ = pipe.encode_prompt(
            prompt=prompt,
            do_classifier_free_guidance=False,
            max_sequence_length=MAX_SEQUENCE_LENGTH,
            device=device,
            dtype=dtype,
        )
        raw = raw.to(device=device, dtype=pipe.connectors.dtype)
        video, audio, mask = pipe.connectors(raw, raw_mask.to(device), padding_side=pipe.tokenizer_padding_side)
    return PromptEmbeddings(video.to(dtype), audio.to(dtype), mask)
