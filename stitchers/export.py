"""Export presets, the bitrate that keeps a file under a platform's size cap, and the MP4 writer.

Every output is H.264 High yuv420p (libx264 through PyAV) + AAC-LC 48 kHz in an
MP4 with the index in front (``+faststart``), tagged BT.709, limited range, at a
constant frame rate (pts = frame index over a 1/fps time base).

Size caps are met with capped CRF: x264 keeps its constant quality until the
rate would exceed a VBV ceiling ``maxrate`` with a ``bufsize``-bit buffer. The
buffer bounds the file: bits ≤ maxrate·T + bufsize, so the ceiling is chosen
from the duration and the cap (``video_bitrate_for_cap``), after the audio and
the container's index are paid for. A short video keeps its CRF quality and
comes out far under the cap; a long one is held just under it. When a cap
would leave less than ``MIN_BITS_PER_PIXEL`` the export is refused before any
work, with the figures and the ways out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import av

from orchestrator.config import ExportConfig
from orchestrator.errors import ConfigError, LongtakeError
from stitchers.audio import AAC_FRAME_SAMPLES, OUTPUT_RATE_HZ
from stitchers.captions import ASS_HEADER, Cue, ass_dialogue

MB = 1_000_000  # platforms state caps in decimal megabytes
MIN_BITS_PER_PIXEL = 0.02  # below this H.264 1080×1920 talking heads smear visibly (≈1 Mbit/s at 24 fps)
SIZE_SAFETY = 0.03  # VBV is a model; keep 3 % of the cap in hand
VBV_BUFFER_S = 2.0
MAX_VIDEO_BITRATE = 240_000_000  # H.264 High level 5.1's ceiling: a looser cap does not bind anyway

_BT709, _LIMITED = 1, 1


@dataclass(frozen=True)
class ExportPreset:
    name: str
    width: int | None  # None: the generation size
    height: int | None
    crf: int
    max_file_mb: float | None
    audio_kbps: int
    fps_range: tuple[float, float]  # what the platform accepts; the plan's fps is never resampled
    description: str


PRESETS: dict[str, ExportPreset] = {
    "tiktok": ExportPreset("tiktok", 1080, 1920, 20, 250.0, 128, (23.0, 60.0), "TikTok: 1080×1920, ≤ 250 MB"),
    "reels": ExportPreset("reels", 1080, 1920, 20, 100.0, 128, (23.0, 60.0), "Instagram Reels: 1080×1920, ≤ 100 MB"),
    "shorts": ExportPreset("shorts", 1080, 1920, 20, None, 128, (23.0, 60.0), "YouTube Shorts: 1080×1920"),
    "master": ExportPreset("master", None, None, 14, None, 256, (1.0, 120.0), "master: generation size, near-lossless"),
}


@dataclass(frozen=True)
class EncodeSettings:
    """Everything the encoder needs, resolved from the preset, the config overrides and the video's length."""

    preset: str
    width: int
    height: int
    fps: Fraction
    crf: int
    x264_preset: str
    audio_bitrate_bps: int
    cap_bytes: int | None
    maxrate_bps: int | None
    bufsize_bits: int | None
    mux_captions: bool
    burn_captions: bool
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def x264_options(self) -> dict[str, str]:
        opts = {"crf": str(self.crf), "preset": self.x264_preset, "profile": "high"}
        if self.maxrate_bps:
            opts["maxrate"] = str(self.maxrate_bps)
            opts["bufsize"] = str(self.bufsize_bits)
        return opts

    def ffmpeg_args(self) -> list[str]:
        """The same encoder settings as ffmpeg command-line options (for comparison runs)."""
        args = ["-c:v", "libx264", "-crf", str(self.crf), "-preset", self.x264_preset, "-profile:v", "high", "-pix_fmt", "yuv420p"]
        if self.maxrate_bps:
            args += ["-maxrate", str(self.maxrate_bps), "-bufsize", str(self.bufsize_bits)]
        args += ["-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv"]
        args += ["-c:a", "aac", "-ar", str(OUTPUT_RATE_HZ), "-b:a", str(self.audio_bitrate_bps), "-movflags", "+faststart"]
        return args


def container_overhead_bytes(frames: int, audio_samples: int) -> int:
    """A generous bound on the MP4 index: ~20 bytes of sample tables per packet, plus headers."""
    packets = frames + -(-audio_samples // AAC_FRAME_SAMPLES)
    return 8_000 + 20 * packets


def video_bitrate_for_cap(cap_bytes: int, duration_s: float, *, audio_bitrate_bps: int, frames: int, audio_samples: int, buffer_s: float = VBV_BUFFER_S) -> int:
    """The VBV ceiling (bit/s) that keeps video + audio + index under ``cap_bytes`` for ``duration_s``.

    With a buffer of ``buffer_s`` seconds at that rate, video bits ≤ rate·(duration + buffer).
    """
    budget_bits = (cap_bytes * (1.0 - SIZE_SAFETY) - container_overhead_bytes(frames, audio_samples)) * 8.0
    # AAC at a target bitrate wanders a little above it on busy passages.
    budget_bits -= audio_bitrate_bps * 1.05 * duration_s
    return max(0, min(MAX_VIDEO_BITRATE, int(budget_bits / (duration_s + buffer_s))))


def resolve_export(export: ExportConfig, *, gen_width: int, gen_height: int, fps: Fraction, total_frames: int, audio_channels: int) -> EncodeSettings:
    """Turn the export config into encoder settings for a video of ``total_frames`` at ``fps``; ConfigError if impossible."""
    preset = PRESETS[export.preset]
    width = export.width or preset.width or gen_width - gen_width % 2
    height = export.height or preset.height or gen_height - gen_height % 2
    if width % 2 or height % 2:
        raise ConfigError(f"export size {width}×{height} must be even for H.264 4:2:0; set export.width/height to even numbers")
    warnings = []
    lo, hi = preset.fps_range
    if not lo <= float(fps) <= hi:
        warnings.append(f"{preset.name} accepts {lo:g}–{hi:g} fps but the video is {float(fps):g} fps (the plan's rate is kept; frames are never resampled)")
    audio_bps = preset.audio_kbps * 1000 if audio_channels >= 2 else preset.audio_kbps * 1000 * 3 // 4
    crf = export.crf if export.crf is not None else preset.crf
    cap_mb = export.max_file_mb if export.max_file_mb is not None else preset.max_file_mb
    cap_bytes = maxrate = bufsize = None
    if cap_mb is not None:
        cap_bytes = int(cap_mb * MB)
        duration_s = float(Fraction(total_frames) / fps)
        audio_samples = round(duration_s * OUTPUT_RATE_HZ)
        maxrate = video_bitrate_for_cap(cap_bytes, duration_s, audio_bitrate_bps=audio_bps, frames=total_frames, audio_samples=audio_samples)
        floor = int(MIN_BITS_PER_PIXEL * width * height * float(fps))
        if maxrate < floor:
            raise ConfigError(
                f"a {_clock(duration_s)} video cannot fit {preset.name}'s {cap_mb:g} MB cap at an acceptable quality: "
                f"the cap leaves {maxrate / 1e6:.2f} Mbit/s for video but {width}×{height} at {float(fps):g} fps needs at least "
                f"{floor / 1e6:.2f} Mbit/s; shorten the voiceover, raise export.max_file_mb, or export with preset master (no cap)"
            )
        bufsize = int(maxrate * VBV_BUFFER_S)
    return EncodeSettings(
        preset=preset.name,
        width=width,
        height=height,
        fps=Fraction(fps),
        crf=crf,
        x264_preset=export.x264_preset,
        audio_bitrate_bps=audio_bps,
        cap_bytes=cap_bytes,
        maxrate_bps=maxrate,
        bufsize_bits=bufsize,
        # Burnt-in captions are not also muxed: movenc enables a lone text track, and players that show
        # enabled text tracks would draw the captions twice.
        mux_captions=export.captions is not None and not export.burn_captions,
        burn_captions=export.captions is not None and export.burn_captions,
        warnings=tuple(warnings),
    )


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}:{secs:02d}"


class Mp4Writer:
    """Streams yuv420p video frames, fltp audio frames and subtitle cues into one faststart MP4.

    Stream order: video 0, audio 1, subtitles 2. Audio and video are written
    in step by the caller, so the file interleaves them as it grows and the
    muxer never buffers more than a moment of packets.
    """

    def __init__(self, path: Path, settings: EncodeSettings, *, audio_layout: str, cues: Sequence[Cue] = ()):
        self.settings = settings
        # movie_timescale: edit lists (which trim the AAC encoder's priming) are in movie ticks; the
        # default 1000 Hz would round the audio's presented length to a millisecond, 48 kHz keeps it sample-exact.
        self._container = av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart", "movie_timescale": str(OUTPUT_RATE_HZ)})
        try:
            video = self._container.add_stream("libx264", rate=settings.fps)
            video.width, video.height, video.pix_fmt = settings.width, settings.height, "yuv420p"
            video.options = settings.x264_options()
            cc = video.codec_context
            cc.time_base = Fraction(1) / settings.fps
            # PyAV's default is x264 *sliced* threads; frame threads (ffmpeg's default) are faster and compress better.
            cc.thread_type, cc.thread_count = "FRAME", 0
            cc.colorspace, cc.color_primaries, cc.color_trc, cc.color_range = _BT709, _BT709, _BT709, _LIMITED
            self.video = video
            audio = self._container.add_stream("aac", rate=OUTPUT_RATE_HZ)
            audio.codec_context.layout = audio_layout
            audio.codec_context.bit_rate = settings.audio_bitrate_bps
            self.audio = audio
            self.subtitles = None
            if cues and settings.mux_captions:
                subs = self._container.add_stream("mov_text")
                subs.codec_context.time_base = Fraction(1, 1000)
                subs.codec_context.subtitle_header = ASS_HEADER.encode("utf-8")
                subs.metadata["language"] = "und"
                self.subtitles = subs
            self._container.start_encoding()
            if self.subtitles is not None:
                self._write_cues(cues)
        except BaseException:
            self._container.close()
            raise
        self.frames_written = 0
        self.video_bytes = 0

    def _write_cues(self, cues: Sequence[Cue]) -> None:
        from av.subtitles.subtitle import SubtitleSet

        stream = self.subtitles
        ctx = stream.codec_context
        ms = Fraction(1, 1000)
        for index, cue in enumerate(cues):
            duration = cue.end_ms - cue.start_ms
            packet = ctx.encode_subtitle(SubtitleSet.create(text=ass_dialogue(index, cue), start=0, end=duration, pts=cue.start_ms))
            packet.stream = stream
            packet.time_base = ms
            packet.pts = packet.dts = cue.start_ms
            packet.duration = duration
            # The interleaving muxer holds these until audio and video catch up with them.
            self._container.mux(packet)

    def new_frame(self) -> av.VideoFrame:
        frame = av.VideoFrame(self.settings.width, self.settings.height, "yuv420p")
        frame.colorspace, frame.color_range = _BT709, _LIMITED
        return frame

    def write_video(self, frame: av.VideoFrame) -> None:
        frame.pts = self.frames_written
        for packet in self.video.encode(frame):
            self.video_bytes += packet.size
            self._container.mux(packet)
        self.frames_written += 1

    def write_audio(self, frame: av.AudioFrame) -> None:
        for packet in self.audio.encode(frame):
            self._container.mux(packet)

    def finish(self) -> None:
        """Flush both encoders and write the index (moved to the front: faststart)."""
        for packet in self.video.encode(None):
            self.video_bytes += packet.size
            self._container.mux(packet)
        for packet in self.audio.encode(None):
            self._container.mux(packet)
        self._container.close()

    def abort(self) -> None:
        try:
            self._container.close()
        except (av.FFmpegError, OSError, LongtakeError):
            pass
