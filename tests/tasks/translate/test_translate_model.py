"""Translator and decoding: teacher forcing vs step-by-step, padding invariance, beam search (beam 1 = greedy,
wide beam = exhaustive search), save/load round trip."""

import itertools
import math

import pytest
import torch

import grukit
from grukit.tasks.translate import data as D
from grukit.tasks.translate.decode import beam_search, greedy
from grukit.tasks.translate.model import Translator


def _model(seed=0, V=40, **kw):
    torch.manual_seed(seed)
    m = Translator(V, V, emb_dim=12, enc_hidden=10, dec_hidden=14, dropout=0.0, **kw).eval()
    with torch.no_grad():  # sharper, non-trivial distributions than the default init
        for p in m.parameters():
            p.mul_(3.0)
    return m


def _batch(seqs):
    return D.pad_batch([torch.tensor(s) for s in seqs])


def test_forward_matches_step_by_step_decoding():
    m = _model()
    src, src_len = _batch([[5, 6, 7, 8], [9, 10]])
    tgt_in = torch.tensor([[D.BOS, 11, 12, 13], [D.BOS, 14, 15, 0]])
    logits, attn = m(src, src_len, tgt_in, return_attention=True)  # (B, T, V), (B, T, S)
    assert logits.shape == (2, 4, 40) and attn.shape == (2, 4, 4)
    assert torch.allclose(attn.sum(-1), torch.ones(2, 4), atol=1e-6)
    assert torch.all(attn[1, :, 2:] == 0)  # padding never attended
    mem, h = m.encode(src, src_len)
    for t in range(4):
        logp, h, a = m.step(tgt_in[:, t], h, mem)
        want = torch.log_softmax(
            logits[:, t].masked_fill(torch.arange(40) < 2, float("-inf")), -1
        )  # <pad>, <bos> never emitted
        assert torch.allclose(logp, want, atol=1e-5) and torch.allclose(a, attn[:, t], atol=1e-6)


def test_padding_does_not_change_a_sentence():
    m = _model(1)
    alone = m(*_batch([[5, 6, 7]]), torch.tensor([[D.BOS, 8, 9]]))
    src, src_len = _batch([[5, 6, 7], [4, 5, 6, 7, 8, 9, 10]])
    both = m(src, src_len, torch.tensor([[D.BOS, 8, 9], [D.BOS, 3, 3]]))
    assert torch.allclose(alone[0], both[0], atol=1e-5)
    g1 = greedy(m, *_batch([[5, 6, 7]]), max_len=12)
    g2 = greedy(m, src, src_len, max_len=12)
    assert g1.tokens[0] == g2.tokens[0] and abs(float(g1.scores[0] - g2.scores[0])) < 1e-4


def test_beam_one_is_greedy():
    for seed in range(3):
        m = _model(seed)
        src, src_len = _batch([[5, 6, 7, 8, 9], [10, 11], [12, 13, 14]])
        g = greedy(m, src, src_len, max_len=15, return_attention=True)
        b = beam_search(
            m, src, src_len, beam_size=1, length_penalty=0.7, max_len=15, return_attention=True
        )
        assert b.tokens == g.tokens
        assert torch.allclose(b.scores, g.scores, atol=1e-5)
        for x, y in zip(b.attention, g.attention):
            assert torch.allclose(x, y, atol=1e-6)


@torch.no_grad()
def _exhaustive(m, src, max_len, alpha):
    """Best of every output (tokens ≠ <pad>, <bos>; ends at <eos> or max_len) by score / ((5+n)/6)^alpha,
    scored one sequence at a time with the model's step."""
    V = m.config.tgt_vocab
    content = [t for t in range(V) if t not in (D.PAD, D.BOS, D.EOS)]
    seqs = [list(c) + [D.EOS] for n in range(max_len) for c in itertools.product(content, repeat=n)]
    seqs += [list(c) for c in itertools.product(content, repeat=max_len)]
    best = None
    for s in seqs:
        mem, h = m.encode(*_batch([src]))
        prev, total = torch.tensor([D.BOS]), 0.0
        for tok in s:
            logp, h, _ = m.step(prev, h, mem)
            total += float(logp[0, tok])
            prev = torch.tensor([tok])
        norm = total / ((5 + len(s)) / 6) ** alpha
        if best is None or norm > best[0]:
            best = (norm, [t for t in s if t != D.EOS], total)
    return best


def _tiny(seed, eos_bias):
    torch.manual_seed(seed)
    m = Translator(
        6, 6, emb_dim=8, enc_hidden=6, dec_hidden=8, dropout=0.0
    ).eval()  # 3 content tokens + <eos>
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(2.5)
        m.out_bias[D.EOS] += eos_bias
    return m


@pytest.mark.parametrize("seed,eos_bias", [(5, -1.0), (3, -2.0)])
def test_wide_beam_equals_exhaustive_search(seed, eos_bias):
    m = _tiny(seed, eos_bias)
    srcs = [[3, 4, 5], [5, 3]]
    src, src_len = _batch(srcs)
    answers = []
    for alpha in (0.0, 1.0, 3.0):
        out = beam_search(
            m, src, src_len, beam_size=40, length_penalty=alpha, max_len=3
        )  # 40 = every output
        for b, s in enumerate(srcs):
            norm, tokens, total = _exhaustive(m, s, 3, alpha)
            assert out.tokens[b] == tokens
            assert math.isclose(float(out.scores[b]), total, abs_tol=1e-4)
            answers.append(tuple(tokens))
    # the cases discriminate: the length penalty changes the answer, and greedy misses the best output
    assert len(set(answers)) >= 3
    assert greedy(m, src, src_len, max_len=3).tokens != [list(a) for a in answers[2:4]]


def test_beam_search_checks_arguments():
    m = _model()
    with pytest.raises(ValueError, match="beam_size"):
        beam_search(m, *_batch([[5]]), beam_size=0)
    with pytest.raises(ValueError, match="length_penalty"):
        beam_search(m, *_batch([[5]]), length_penalty=-1)
    with pytest.raises(ValueError, match="src_vocab"):
        Translator(0, 5)


def test_save_load_round_trip(tmp_path):
    m = _model(2)
    tok = D.SubwordTokenizer.train(["le chat", "un chien"], vocab_size=270)
    path = grukit.save(
        m, tmp_path / "t.safetensors", task="translate", extra=D.tokenizers_to_extra(tok, tok)
    )
    from grukit.tasks.translate.predict import load_bundle

    b = load_bundle(path)
    assert b.model.config == m.config
    src, src_len = _batch([[5, 6, 7]])
    assert (
        greedy(b.model, src, src_len, max_len=10).tokens
        == greedy(m, src, src_len, max_len=10).tokens
    )
    assert b.tgt_tok.encode("le chien") == tok.encode("le chien")
