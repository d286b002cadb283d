"""Silero VAD (the default backend): the model shipped in the ``silero-vad`` wheel, run on CPU.

Silero scores 512-sample windows at 16 kHz, each seen with the 64 samples
before it as context, through a window-local encoder (an STFT as a convolution
and four small convolutions) followed by one LSTM cell whose state runs across
windows. Calling the packaged TorchScript model once per window costs a Python
round trip per 32 ms of audio; here the encoder runs on all windows at once in
large batches, and only the LSTM, the single recurrent part, steps through
time, inside one ``torch.nn.LSTM`` call. The weights are read from the
wheel's TorchScript model (``silero_vad.jit``, its 16 kHz branch), and
``reference_probs`` runs that same model window by window so tests can check
the two agree.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from segmenters.vad.base import VadBackend, VadResult, check_audio_16k, n_frames_for, pad_to_frames

WINDOW_SAMPLES = 512  # the model's fixed window at 16 kHz
CONTEXT_SAMPLES = 64  # samples of the previous window the model sees in front of each window
_REFLECT_PAD_SAMPLES = 64  # the model's STFT pads each window on the right by reflection
_STFT_HOP_SAMPLES = 128
_N_FREQ_BINS = 129  # 256-point STFT: bins 0..128
_ENCODER_BATCH_WINDOWS = 4096  # bounds peak memory (~60 MB) on long files


def _package_dir() -> Path | None:
    """The silero_vad package folder, found without importing it (its __init__ resets torch's thread count)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _model_path() -> Path | None:
    package = _package_dir()
    path = package / "data" / "silero_vad.jit" if package else None
    return path if path is not None and path.is_file() else None


# Our names for the TorchScript model's 16 kHz parameters.
_JIT_NAMES = {
    "stft_conv.weight": "_model.stft.forward_basis_buffer",
    **{f"conv{i + 1}.{p}": f"_model.encoder.{i}.reparam_conv.{p}" for i in range(4) for p in ("weight", "bias")},
    **{f"lstm_cell.{p}": f"_model.decoder.rnn.{p}" for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")},
    "final_conv.weight": "_model.decoder.decoder.2.weight",
    "final_conv.bias": "_model.decoder.decoder.2.bias",
}


def _load_jit(torch: Any, model_path: Path) -> Any:
    with warnings.catch_warnings():
        # torch ≥ 2.10 deprecates TorchScript loading; the wheel ships its weights only in that form
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.load(str(model_path), map_location="cpu")


def _load_weights(torch: Any, model_path: Path) -> dict[str, Any]:
    state = _load_jit(torch, model_path).state_dict()
    missing = [jit for jit in _JIT_NAMES.values() if jit not in state]
    if missing:
        raise ImportError(f"{model_path} does not have the expected silero VAD layout (missing {missing[:3]}); install silero-vad 6 (`pip install 'silero-vad>=6,<7'`)")
    return {ours: state[jit].detach().clone().float() for ours, jit in _JIT_NAMES.items()}


class SileroVad(VadBackend):
    NAME = "silero"
    SPEECH_SPECIFIC = True

    def __init__(self, threshold: float = 0.5, num_threads: int | None = None):
        super().__init__(threshold)
        import torch  # heavy: only when this backend is chosen

        model_path = _model_path()
        if model_path is None:
            raise ImportError("silero VAD needs the silero-vad wheel with its bundled silero_vad.jit; install it with `pip install silero-vad`")
        self._torch = torch
        self._model_path = model_path
        self._weights = _load_weights(torch, model_path)
        # One thread by default: the model is tiny (3 minutes take ~0.15 s on one core),
        # and OpenMP worker threads spin-wait, so on cores shared with anything else
        # (the generator, a parallel test run) two threads measured 3-10× slower, not faster.
        self.num_threads = num_threads or 1
        w = self._weights
        self._lstm = torch.nn.LSTM(input_size=128, hidden_size=128, batch_first=True)
        with torch.no_grad():
            # LSTMCell and LSTM share the gate layout (input, forget, cell, output).
            self._lstm.weight_ih_l0.copy_(w["lstm_cell.weight_ih"])
            self._lstm.weight_hh_l0.copy_(w["lstm_cell.weight_hh"])
            self._lstm.bias_ih_l0.copy_(w["lstm_cell.bias_ih"])
            self._lstm.bias_hh_l0.copy_(w["lstm_cell.bias_hh"])
        self._lstm.eval()

    @classmethod
    def is_available(cls) -> bool:
        return importlib.util.find_spec("torch") is not None and _model_path() is not None

    def detect(self, audio_16k: np.ndarray) -> VadResult:
        audio = check_audio_16k(audio_16k, self.NAME)
        n_windows = n_frames_for(audio.shape[0], WINDOW_SAMPLES)
        if n_windows == 0:
            return VadResult(self.NAME, WINDOW_SAMPLES, np.zeros(0, dtype=np.float32))
        torch = self._torch
        # torch's thread count is process-wide: set ours for this call only, then give it back
        previous_threads = torch.get_num_threads()
        torch.set_num_threads(self.num_threads)
        try:
            with torch.inference_mode():
                probs = self._run(audio, n_windows)
        finally:
            torch.set_num_threads(previous_threads)
        return VadResult(self.NAME, WINDOW_SAMPLES, np.clip(probs, 0.0, 1.0).astype(np.float32))

    # -- the model, batched ---------------------------------------------------------

    def _windows(self, audio: np.ndarray) -> np.ndarray:
        """[n_windows, 64 + 512]: each window with the previous 64 samples (zeros before the start) in front."""
        padded = np.concatenate([np.zeros(CONTEXT_SAMPLES, dtype=np.float32), pad_to_frames(audio, WINDOW_SAMPLES)])
        view = np.lib.stride_tricks.sliding_window_view(padded, CONTEXT_SAMPLES + WINDOW_SAMPLES)
        return view[::WINDOW_SAMPLES].copy()  # a writable copy (torch refuses read-only views)

    def _encode(self, windows: Any) -> Any:
        """Window-local part of the model: [batch, 576] samples → [batch, 128] features."""
        torch, w = self._torch, self._weights
        F = torch.nn.functional
        x = F.pad(windows.unsqueeze(1), (0, _REFLECT_PAD_SAMPLES), mode="reflect")
        spec = F.conv1d(x, w["stft_conv.weight"], stride=_STFT_HOP_SAMPLES)
        magnitude = torch.sqrt(spec[:, :_N_FREQ_BINS] ** 2 + spec[:, _N_FREQ_BINS:] ** 2)
        x = F.relu(F.conv1d(magnitude, w["conv1.weight"], w["conv1.bias"], padding=1))
        x = F.relu(F.conv1d(x, w["conv2.weight"], w["conv2.bias"], stride=2, padding=1))
        x = F.relu(F.conv1d(x, w["conv3.weight"], w["conv3.bias"], stride=2, padding=1))
        x = F.relu(F.conv1d(x, w["conv4.weight"], w["conv4.bias"], padding=1))
        return x.squeeze(-1)

    def _run(self, audio: np.ndarray, n_windows: int) -> np.ndarray:
        torch, w = self._torch, self._weights
        windows = torch.from_numpy(self._windows(audio))
        features = torch.cat([self._encode(windows[i : i + _ENCODER_BATCH_WINDOWS]) for i in range(0, n_windows, _ENCODER_BATCH_WINDOWS)])
        hidden, _ = self._lstm(features.unsqueeze(0))  # state starts at zero, like a fresh model
        logits = torch.nn.functional.conv1d(torch.relu(hidden[0]).unsqueeze(-1), w["final_conv.weight"], w["final_conv.bias"])
        return torch.sigmoid(logits).reshape(-1).numpy()

    # -- reference ----------------------------------------------------------------------

    def reference_probs(self, audio_16k: np.ndarray) -> np.ndarray:
        """The packaged TorchScript model run window by window (slow; for checking ``detect``)."""
        audio = check_audio_16k(audio_16k, self.NAME)
        torch = self._torch
        model = _load_jit(torch, self._model_path)
        model.eval()
        model.reset_states()
        padded = torch.from_numpy(pad_to_frames(audio, WINDOW_SAMPLES).copy())
        with torch.inference_mode():
            out = [float(model(padded[i : i + WINDOW_SAMPLES], 16000)) for i in range(0, padded.shape[0], WINDOW_SAMPLES)]
        return np.asarray(out, dtype=np.float32)
