"""CharLM against an independent torch.nn implementation; streaming generation equals the full-sequence path;
scoring equals a direct log-softmax computation."""

import math

import pytest
import torch
import torch.nn.functional as F

import grukit
from grukit.tasks.text.evaluate import score_ids, unigram_nats
from grukit.tasks.text.generate import generate, sample_ids
from grukit.tasks.text.model import CharLM

CHARS = "\n abcdefghijklmnopqrstuvwxyz.,:;!?ABC"


def _model(seed=0, layers=2):
    torch.manual_seed(seed)
    m = CharLM(CHARS, embed_dim=12, hidden_size=24, num_layers=layers, dropout=0.1)
    with torch.no_grad():  # random non-zero biases everywhere
        for p in m.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return m.eval()


def _torch_twin(m):
    """embedding → torch.nn.GRU → linear with the same weights (the oracle)."""
    cfg = m.config
    emb = torch.nn.Embedding(len(CHARS), cfg.embed_dim)
    gru = torch.nn.GRU(cfg.embed_dim, cfg.hidden_size, cfg.num_layers, batch_first=True)
    head = torch.nn.Linear(cfg.hidden_size, len(CHARS))
    emb.load_state_dict(m.embed.state_dict())
    gru.load_state_dict(m.gru.state_dict())
    head.load_state_dict(m.head.state_dict())

    def run(ids, h=None):
        out, h_n = gru(emb(ids), h)
        return head(out), h_n

    return run


def test_forward_matches_torch_nn_gru():
    m = _model()
    twin = _torch_twin(m)
    ids = torch.randint(0, len(CHARS), (3, 17))
    h0 = torch.randn(2, 3, 24)
    with torch.no_grad():
        a, ha = m(ids, h0)
        b, hb = twin(ids, h0)
    assert a.shape == (3, 17, len(CHARS)) and ha.shape == (2, 3, 24)
    assert torch.allclose(a, b, atol=1e-5) and torch.allclose(ha, hb, atol=1e-5)


def test_step_equals_full_sequence():
    m = _model()
    ids = torch.randint(0, len(CHARS), (2, 30))
    with torch.no_grad():
        full, h_full = m(ids)
        h = None
        for t in range(ids.shape[1]):
            logits, h = m.step(ids[:, t], h)
            assert torch.allclose(logits, full[:, t], atol=1e-5)
    assert torch.allclose(h, h_full, atol=1e-5)


def test_save_load_round_trip(tmp_path):
    m = _model()
    grukit.save(m, tmp_path / "lm.safetensors", task="text")
    m2 = grukit.load(tmp_path / "lm.safetensors")
    assert isinstance(m2, CharLM) and m2.config == m.config and m2.vocab.chars == CHARS
    ids = torch.randint(0, len(CHARS), (2, 9))
    with torch.no_grad():
        assert torch.equal(m(ids)[0], m2(ids)[0])


def test_generation_streams_and_equals_the_full_path():
    m = _model()
    prompt = "abc, "
    got = list(sample_ids(m, prompt, 40, temperature=1.0, seed=7))
    ids = [i for i, _ in got]
    full_ids = m.vocab.encode(prompt + m.vocab.decode(ids))
    with torch.no_grad():
        full = m(full_ids[None])[0][0]  # (P + 40, V), one full-sequence call
    P = len(prompt)
    for k, (_, logits) in enumerate(got):  # the logits each sample was drawn from
        assert torch.allclose(logits, full[P - 1 + k], atol=1e-5), k
    # greedy decoding picks the full path's argmax at every step
    greedy = [i for i, _ in sample_ids(m, prompt, 25, temperature=0.0)]
    with torch.no_grad():
        full_g = m(m.vocab.encode(prompt + m.vocab.decode(greedy))[None])[0][0]
    assert greedy == full_g[P - 1 : P - 1 + 25].argmax(-1).tolist()


def test_generation_is_reproducible_and_never_recomputes_the_prefix(monkeypatch):
    m = _model()
    a = "".join(generate(m, "ab", 60, temperature=1.0, seed=3))
    b = "".join(generate(m, "ab", 60, temperature=1.0, seed=3))
    c = "".join(generate(m, "ab", 60, temperature=1.0, seed=4))
    assert a == b and len(a) == 60 and a != c
    calls = {"forward": 0, "step": 0, "steps_len": []}
    orig_fwd, orig_step = CharLM.forward, CharLM.step

    def fwd(self, ids, h=None):
        calls["forward"] += 1
        calls["steps_len"].append(ids.shape[1])
        return orig_fwd(self, ids, h)

    def step(self, ids_t, h=None):
        calls["step"] += 1
        return orig_step(self, ids_t, h)

    monkeypatch.setattr(CharLM, "forward", fwd)
    monkeypatch.setattr(CharLM, "step", step)
    stream = generate(m, "hello", 50, seed=1)
    first = next(stream)
    assert len(first) == 1 and calls == {
        "forward": 1,
        "step": 0,
        "steps_len": [5],
    }  # prompt once, then lazily
    rest = list(stream)
    assert (
        len(rest) == 49 and calls["forward"] == 1 and calls["step"] == 50
    )  # one step per new character


def test_top_k_one_is_greedy():
    m = _model()
    a = [i for i, _ in sample_ids(m, "a", 20, temperature=1.3, top_k=1, seed=0)]
    b = [i for i, _ in sample_ids(m, "a", 20, temperature=0.0)]
    assert a == b


@pytest.mark.parametrize("streams,chunk", [(1, 7), (1, 1000), (3, 5)])
def test_score_equals_direct_log_softmax(streams, chunk):
    m = _model()
    ids = torch.randint(0, len(CHARS), (301,))
    res = score_ids(m, ids, streams=streams, chunk=chunk)
    n = 301 // streams
    total, count = 0.0, 0
    with torch.no_grad():
        for s in range(streams):
            piece = ids[s * n : (s + 1) * n]
            logp = F.log_softmax(m(piece[None])[0][0].double(), -1)  # one full pass per stream
            total -= float(logp[:-1].gather(1, piece[1:, None]).sum())
            count += n - 1
    assert res["chars"] == count
    assert res["nats_per_char"] == pytest.approx(total / count, rel=1e-6)
    assert res["bits_per_char"] == pytest.approx(res["nats_per_char"] / math.log(2), rel=1e-12)
    assert res["perplexity"] == pytest.approx(math.exp(res["nats_per_char"]), rel=1e-12)


def test_unigram_baseline():
    train, ev = torch.tensor([0, 0, 1, 2]), torch.tensor([1, 0, 2])
    # add-one counts 3, 2, 2 (+1 for id 3) over 4 + 4 = 8; eval predicts ids 0 and 2
    want = -(math.log(3 / 8) + math.log(2 / 8)) / 2
    assert unigram_nats(train, ev, 4) == pytest.approx(want, rel=1e-12)


def test_bad_input_is_refused():
    m = _model()
    from grukit.errors import UserInputError

    with pytest.raises(UserInputError, match="not in the model's vocabulary"):
        next(generate(m, "\u00e9", 5))
    with pytest.raises(UserInputError, match="at least one character"):
        next(generate(m, "", 5))
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        m(torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(B,\)"):
        m.step(torch.zeros(2, 2, dtype=torch.long))
