"""Context parallelism for one LTX-2.3 transformer call: the video tokens of one segment split over the ranks of a group.

Chained modes (``tail``, ``last-frame``) cannot spread segments over GPUs, so one segment's transformer passes are
split instead. ``ContextParallelTransformer`` wraps diffusers' ``LTX2VideoTransformer3DModel`` and is called with the
same keyword arguments (``generators.ltx2_guidance.transformer_pass`` uses it unchanged). Every rank gets the same
full inputs and returns the same full outputs; inside, each rank carries one contiguous chunk of the video tokens:

- the video latents, their RoPE coordinates, the per-token video timestep (and so every per-token modulation derived
  from it, including a per-token input that ``ltx2_guidance`` feeds the cross-attention scale/shift by a pre-hook)
  and the keyframe marker are cut to the rank's chunk before the model sees them;
- the audio stream (a few hundred frozen tokens) stays whole on every rank, so its self-attention is untouched and
  every rank computes the same audio;
- video self-attention and video→audio cross-attention gather their keys and values from every rank after the
  projections (an all-gather of K and V, exact), with the full-length key RoPE; queries stay local. Audio→video
  cross-attention (video queries, audio keys) and the text cross-attention need nothing;
- the video prediction is gathered at the end.

Why not diffusers' own ``_cp_plan``: in diffusers 0.42.1 it splits the video tokens and RoPE only (the per-token
timestep and the audio↔video cross-attention are left out), and a plan applies one parallel scheme to every attention
processor, while the video→audio cross-attention needs video keys gathered under whole audio queries.

Not supported (a clear error): a video self-attention mask, and STG with a batch that perturbs only some elements
(longtake runs its guidance passes at batch 1, so STG blocks are either fully perturbed or not at all).
``generators.ltx2_cp_launch`` runs it in the pipeline: one process per GPU, each with its own copy of the model.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch


@dataclass(frozen=True)
class TokenSplit:
    """How ``total`` tokens are cut into ``world`` contiguous chunks (the first ``total % world`` one token longer)."""

    total: int
    world: int
    rank: int

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.world:
            raise ValueError(f"rank {self.rank} is outside a group of {self.world}")
        if self.total < self.world:
            raise ValueError(f"{self.total} video tokens cannot be split over {self.world} ranks")

    @property
    def sizes(self) -> list[int]:
        base, extra = divmod(self.total, self.world)
        return [base + (r < extra) for r in range(self.world)]

    @property
    def start(self) -> int:
        return sum(self.sizes[: self.rank])

    @property
    def stop(self) -> int:
        return self.start + self.sizes[self.rank]

    def local(self, x: "torch.Tensor", dim: int) -> "torch.Tensor":
        return x.narrow(dim, self.start, self.stop - self.start)


def all_gather_tokens(x: "torch.Tensor", split: TokenSplit, dim: int, group=None) -> "torch.Tensor":
    """Concatenate every rank's chunk of ``x`` along ``dim`` (chunks may differ by one token: padded, then trimmed)."""
    import torch
    import torch.distributed as dist

    longest = max(split.sizes)
    x = x.contiguous()
    if x.shape[dim] < longest:
        pad_shape = list(x.shape)
        pad_shape[dim] = longest - x.shape[dim]
        x = torch.cat([x, x.new_zeros(pad_shape)], dim=dim)
    parts = [torch.empty_like(x) for _ in range(split.world)]
    dist.all_gather(parts, x, group=group)
    return torch.cat([p.narrow(dim, 0, n) for p, n in zip(parts, split.sizes)], dim=dim)


class ContextParallelTransformer:
    """Call an ``LTX2VideoTransformer3DModel`` with its video tokens split over ``group`` (default: the world group).

    Attribute access falls through to the wrapped model, so code that hooks its submodules keeps working.
    ``latents_from``: a rank whose video latents every rank takes before splitting. Each process of a pipeline keeps
    its own latents; they agree to the bit when every GPU computes alike, and this makes them agree when one does not.
    """

    def __init__(self, transformer, group=None, *, latents_from: int | None = None) -> None:
        import torch.distributed as dist

        if not dist.is_initialized():
            raise RuntimeError("context parallelism needs torch.distributed initialised (init_process_group) first")
        self.transformer = transformer
        self.group = group
        self.world = dist.get_world_size(group)
        self.rank = dist.get_rank(group)
        self.latents_from = latents_from

    def __getattr__(self, name: str) -> Any:
        # Only reached for names not set in __init__.
        return getattr(self.__dict__["transformer"], name)

    def __call__(self, **kwargs):
        import torch

        model = self.transformer
        hidden_states = kwargs["hidden_states"]
        if kwargs.get("video_self_attention_mask") is not None:
            raise NotImplementedError("context parallelism does not split a video self-attention mask")
        batch, total = hidden_states.shape[:2]
        if self.latents_from is not None:
            import torch.distributed as dist

            hidden_states = hidden_states.contiguous().clone()
            dist.broadcast(hidden_states, src=dist.get_global_rank(self.group, self.latents_from) if self.group is not None else self.latents_from, group=self.group)
        split = TokenSplit(total=total, world=self.world, rank=self.rank)

        video_coords = kwargs.get("video_coords")
        if video_coords is None:
            video_coords = model.rope.prepare_video_coords(
                batch, kwargs["num_frames"], kwargs["height"], kwargs["width"], hidden_states.device, fps=kwargs.get("fps", 24.0)
            )
        timestep = kwargs["timestep"]
        if kwargs.get("audio_timestep") is None:
            # diffusers falls back to the video timestep for the audio; it must be the whole one, not this rank's chunk.
            kwargs["audio_timestep"] = timestep

        # The keys of the split attentions span every token, so they need the full-length RoPE.
        full_self_rope = model.rope(video_coords, device=hidden_states.device)
        full_cross_rope = model.cross_attn_rope(video_coords[:, 0:1, :], device=hidden_states.device)

        kwargs["hidden_states"] = split.local(hidden_states, 1)
        kwargs["video_coords"] = split.local(video_coords, 2)
        if timestep.ndim == 2 and timestep.shape[1] == total:
            kwargs["timestep"] = split.local(timestep, 1)
        if kwargs.get("video_keyframes_mask") is not None:
            kwargs["video_keyframes_mask"] = split.local(kwargs["video_keyframes_mask"], 1)
        return_dict = kwargs.pop("return_dict", True)

        with ExitStack() as stack:
            self._hook_per_token_modulation(stack, split, batch)
            for block in model.transformer_blocks:
                self._hook_gathered_keys(stack, block.attn1, split, full_self_rope)
                self._hook_gathered_keys(stack, block.video_to_audio_attn, split, full_cross_rope)
            video_out, audio_out = model(**kwargs, return_dict=False)
        video_out = all_gather_tokens(video_out, split, dim=1, group=self.group)
        if not return_dict:
            return video_out, audio_out
        from diffusers.models.transformers.transformer_ltx2 import AudioVisualModelOutput

        return AudioVisualModelOutput(sample=video_out, audio_sample=audio_out)

    def _hook_per_token_modulation(self, stack: ExitStack, split: TokenSplit, batch: int) -> None:
        """Cut a full-length per-token timestep reaching a video modulation module to this rank's chunk.

        The model itself feeds them the already split timestep; ``ltx2_guidance`` replaces the cross-attention
        scale/shift's input with the full per-token timestep by a pre-hook, which runs before this one.
        """
        model = self.transformer

        def cut(_module, args):
            first = args[0]
            if first.ndim == 1 and first.numel() == batch * split.total and split.total != split.stop - split.start:
                return (split.local(first.view(batch, split.total), 1).reshape(-1), *args[1:])
            return None

        for name in ("av_cross_attn_video_scale_shift", "av_cross_attn_video_a2v_gate"):
            handle = getattr(model, name).register_forward_pre_hook(cut)
            stack.callback(handle.remove)

    def _hook_gathered_keys(self, stack: ExitStack, attn, split: TokenSplit, full_key_rope) -> None:
        """Make ``attn`` attend from its local queries to the keys/values of every rank's video tokens."""
        state = {"gather": False}
        group = self.group

        def before(_module, args, kwargs):
            if len(args) > 1:
                # Only hidden_states comes positionally in diffusers' blocks; the RoPE must be a keyword to be replaced.
                raise TypeError("context parallelism expects the attention's inputs after hidden_states as keywords")
            if kwargs.get("all_perturbed"):
                return None  # STG skips the attention: the output is the local value projection, nothing to gather
            if kwargs.get("perturbation_mask") is not None:
                raise NotImplementedError("context parallelism supports STG only with every batch element perturbed")
            state["gather"] = True
            kwargs = dict(kwargs)
            if kwargs.get("query_rotary_emb") is not None:
                kwargs["key_rotary_emb"] = full_key_rope
            return args, kwargs

        def after(_module, _args, _kwargs, _output):
            state["gather"] = False

        def gather_projection(_module, _args, output):
            if state["gather"]:
                return all_gather_tokens(output, split, dim=1, group=group)
            return None

        handles = [
            attn.register_forward_pre_hook(before, with_kwargs=True),
            attn.register_forward_hook(after, with_kwargs=True),
            attn.to_k.register_forward_hook(gather_projection),
            attn.to_v.register_forward_hook(gather_projection),
        ]
        for handle in handles:
            stack.callback(handle.remove)
