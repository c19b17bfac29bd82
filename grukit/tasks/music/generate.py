"""Sampling piano rolls from a MusicGRU; piano roll ↔ MIDI (pretty_midi); piano-roll PNG (matplotlib).

A piano roll here is a (T, 88) array in {0, 1}: column k is MIDI pitch 21 + k. In MIDI, each run of
consecutive frames where a key is on becomes one note lasting that many frames of 1/fs seconds.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..._io import atomic_paths, check_output_file
from ...errors import UserInputError
from .data import LOWEST_PITCH, N_PITCHES
from .model import MusicGRU


@torch.no_grad()
def sample(
    model: MusicGRU,
    steps: int,
    temperature: float = 1.0,
    prime: np.ndarray | Tensor | None = None,
    seed: int | None = 0,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Generate ``steps`` new frames → uint8 (P + steps, 88): the prime's P frames, then the samples.

    Each key of the next frame is drawn from Bernoulli(σ(logit / temperature)) — independently, or key by key
    for ``frame_ar`` models (see :meth:`MusicGRU.sample_frame`). Without a
    prime, the first frame is drawn from the model's prediction after a silent (all-zero) frame.
    ``progress(n)``, if given, is called as frames are produced (``n`` new frames at a time).
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    gen = torch.Generator().manual_seed(int(seed)) if seed is not None else None
    was_training = model.training
    model.eval()
    try:
        h = None
        frames: list[Tensor] = []
        if prime is not None:
            p = torch.as_tensor(np.asarray(prime), dtype=torch.float32)
            if p.dim() != 2 or p.shape[1] != N_PITCHES or p.shape[0] < 1:
                raise ValueError(
                    f"prime must be a piano roll (P, {N_PITCHES}) with P ≥ 1, got {tuple(p.shape)}"
                )
            _, h = (
                model(p[None, :-1], None, next_frames=p[None, 1:]) if len(p) > 1 else (None, None)
            )
            logits, h = model.step(p[-1:], h)  # the head's logits for the frame after the prime
            frames += list(p)
        else:
            logits, h = model.step(torch.zeros(1, N_PITCHES), None)
        for i in range(steps):
            frame = model.sample_frame(logits, temperature, generator=gen)  # (1, 88)
            frames.append(frame[0])
            logits, h = model.step(frame, h)
            if progress is not None and (i + 1) % 64 == 0:
                progress(64)
        if progress is not None and steps % 64:
            progress(steps % 64)
    finally:
        model.train(was_training)
    return torch.stack(frames).to(torch.uint8).numpy()


def roll_to_midi(roll: np.ndarray, fs: float = 4.0, program: int = 0, velocity: int = 90):
    """A pretty_midi.PrettyMIDI with one piano track: each run of on-frames of a key is one note."""
    import pretty_midi

    roll = np.asarray(roll)
    if roll.ndim != 2 or roll.shape[1] != N_PITCHES:
        raise ValueError(f"roll must be (T, {N_PITCHES}), got {roll.shape}")
    pm = pretty_midi.PrettyMIDI(initial_tempo=60.0 * fs / 2 if fs > 0 else 120.0)
    inst = pretty_midi.Instrument(program=program, name="grukit")
    padded = np.vstack(
        [
            np.zeros((1, N_PITCHES), np.int8),
            (roll > 0).astype(np.int8),
            np.zeros((1, N_PITCHES), np.int8),
        ]
    )
    edges = np.diff(padded, axis=0)  # (T + 1, 88): +1 at a note start, -1 just after its end
    for k in range(N_PITCHES):
        starts = np.nonzero(edges[:, k] == 1)[0]
        ends = np.nonzero(edges[:, k] == -1)[0]
        for s, e in zip(starts, ends):
            inst.notes.append(
                pretty_midi.Note(
                    velocity=velocity, pitch=LOWEST_PITCH + k, start=s / fs, end=e / fs
                )
            )
    inst.notes.sort(key=lambda n: (n.start, n.pitch))
    pm.instruments.append(inst)
    return pm


def midi_to_roll(path: str | os.PathLike, fs: float = 4.0) -> np.ndarray:
    """Read a MIDI file → uint8 piano roll (T, 88) sampled at ``fs`` frames per second (drums ignored)."""
    import pretty_midi

    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"--prime {path}: no such file")
    try:
        pm = pretty_midi.PrettyMIDI(str(path))
    except Exception as e:  # mido/pretty_midi raise many types for a bad file
        raise UserInputError(
            f"--prime {path} is not a readable MIDI file ({type(e).__name__}: {e})"
        ) from None
    full = pm.get_piano_roll(fs=fs)  # (128, T) velocities
    roll = (full[LOWEST_PITCH : LOWEST_PITCH + N_PITCHES].T > 0).astype(np.uint8)
    if roll.shape[0] == 0 or not roll.any():
        raise UserInputError(
            f"--prime {path} has no notes in the 88-key range (MIDI {LOWEST_PITCH}.."
            f"{LOWEST_PITCH + N_PITCHES - 1})"
        )
    return roll


def _plot_roll_to(
    roll: np.ndarray,
    path: Path,
    fs: float = 4.0,
    prime_frames: int = 0,
    title: str | None = None,
) -> None:
    """Draw the piano roll into ``path`` (PNG) directly."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    roll = np.asarray(roll)
    fig, ax = plt.subplots(figsize=(min(4 + roll.shape[0] / 16, 24), 4.5), dpi=100)
    t_end = roll.shape[0] / fs
    ax.imshow(
        roll.T,
        aspect="auto",
        origin="lower",
        cmap="Greys",
        interpolation="nearest",
        extent=(0, t_end, LOWEST_PITCH - 0.5, LOWEST_PITCH + N_PITCHES - 0.5),
    )
    if prime_frames:
        ax.axvline(prime_frames / fs, color="tab:red", lw=1, label="end of prime")
        ax.legend(loc="upper right")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("MIDI pitch")
    ax.set_title(title or "grukit music: generated piano roll")
    fig.tight_layout()
    try:
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)


def generate_to_files(
    model: MusicGRU,
    steps: int,
    out: str | os.PathLike,
    temperature: float = 1.0,
    prime: str | os.PathLike | None = None,
    prime_frames: int = 32,
    fs: float = 4.0,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Sample and write ``out`` (.mid) plus ``out`` with suffix .png; both or neither are written.

    The output paths are checked before sampling (a bad ``--out`` costs no time and names ``--out`` itself);
    both files get the mode a plain ``open()`` gives."""
    out = Path(out).expanduser()
    if out.suffix.lower() not in (".mid", ".midi"):
        raise UserInputError(f"--out must name a .mid or .midi file, got {out}")
    png = out.with_suffix(".png")
    check_output_file(out, "--out")
    check_output_file(png, "--out")
    prime_roll = midi_to_roll(prime, fs=fs)[:prime_frames] if prime is not None else None
    roll = sample(
        model, steps, temperature=temperature, prime=prime_roll, seed=seed, progress=progress
    )
    pm = roll_to_midi(roll, fs=fs)
    with atomic_paths([out, png], option="--out") as (tmp_mid, tmp_png):
        pm.write(str(tmp_mid))
        n_prime = 0 if prime_roll is None else len(prime_roll)
        _plot_roll_to(roll, tmp_png, fs=fs, prime_frames=n_prime)
    notes = sum(len(i.notes) for i in pm.instruments)
    return {"midi": out, "png": png, "frames": int(roll.shape[0]), "notes": notes, "roll": roll}
