"""MIDI generation: files pretty_midi and mido read back, notes in the 88-key range, CLI errors."""

import mido
import numpy as np
import pretty_midi
import pytest
import torch

import grukit
from grukit.tasks.music.generate import midi_to_roll, roll_to_midi, sample
from grukit.tasks.music.model import MusicGRU


def _tiny_model(path):
    torch.manual_seed(0)
    m = MusicGRU(hidden_size=16)
    with torch.no_grad():
        m.head.bias.fill_(-2.0)  # ~10 notes per frame on average
    grukit.save(m, path, task="music")
    return path


def test_roll_midi_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    roll = (rng.random((40, 88)) < 0.05).astype(np.uint8)
    roll[:, 0] = 1  # one long note at A0
    roll[10:13, 87] = 1  # and C8
    pm = roll_to_midi(roll, fs=4.0)
    pm.write(str(tmp_path / "r.mid"))
    back = midi_to_roll(tmp_path / "r.mid", fs=4.0)
    assert np.array_equal(back[: len(roll)], roll) and not back[len(roll) :].any()
    pitches = {
        n.pitch for n in pretty_midi.PrettyMIDI(str(tmp_path / "r.mid")).instruments[0].notes
    }
    assert 21 in pitches and 108 in pitches


def test_sample_shapes_and_prime():
    m = MusicGRU(hidden_size=8)
    prime = np.zeros((5, 88), np.uint8)
    prime[:, 30] = 1
    out = sample(m, 12, prime=prime, seed=3)
    assert out.shape == (17, 88) and out.dtype == np.uint8 and np.array_equal(out[:5], prime)
    assert np.array_equal(sample(m, 12, prime=prime, seed=3), out)  # seeded


@pytest.mark.slow
def test_generate_cli_writes_readable_midi_and_png(tmp_path, cli_subprocess):
    model = _tiny_model(tmp_path / "tiny.safetensors")
    out = tmp_path / "song.mid"
    r = cli_subprocess(
        "music",
        "generate",
        "--checkpoint",
        str(model),
        "--steps",
        "48",
        "--out",
        str(out),
        "--temperature",
        "0.9",
    )
    assert r.code == 0, r.err
    assert out.is_file() and (tmp_path / "song.png").is_file()
    notes = pretty_midi.PrettyMIDI(str(out)).instruments[0].notes
    assert len(notes) > 0 and all(21 <= n.pitch <= 108 for n in notes)
    on = [
        msg
        for tr in mido.MidiFile(str(out)).tracks
        for msg in tr
        if msg.type == "note_on" and msg.velocity > 0
    ]
    assert len(on) == len(notes) and all(21 <= msg.note <= 108 for msg in on)
    # primed continuation
    out2 = tmp_path / "cont.mid"
    r = cli_subprocess(
        "music",
        "generate",
        "--checkpoint",
        str(model),
        "--steps",
        "16",
        "--out",
        str(out2),
        "--prime",
        str(out),
        "--prime-frames",
        "8",
    )
    assert r.code == 0, r.err
    assert midi_to_roll(out2).shape[0] <= 24


@pytest.mark.slow
def test_generate_cli_errors_leave_no_files(tmp_path, cli_subprocess):
    model = _tiny_model(tmp_path / "tiny.safetensors")
    r = cli_subprocess(
        "music", "generate", "--checkpoint", str(model), "--out", str(tmp_path / "song.txt")
    )
    assert r.code == 2 and "--out" in r.err and "Traceback" not in r.err
    bad = tmp_path / "bad.mid"
    bad.write_text("not midi")
    r = cli_subprocess(
        "music",
        "generate",
        "--checkpoint",
        str(model),
        "--out",
        str(tmp_path / "x.mid"),
        "--prime",
        str(bad),
    )
    assert r.code == 2 and "MIDI" in r.err
    r = cli_subprocess(
        "music",
        "generate",
        "--checkpoint",
        str(tmp_path / "missing.safetensors"),
        "--out",
        str(tmp_path / "y.mid"),
    )
    assert r.code == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.mid", "tiny.safetensors"]
