"""SentimentGRU against an independent torch.nn implementation, padding invariance, save/load, and
explanations checked against predictions on edited sentences."""

import pytest
import torch

import grukit
from grukit.errors import UserInputError
from grukit.tasks.sentiment.data import PAD, UNK
from grukit.tasks.sentiment.evaluate import predict_proba
from grukit.tasks.sentiment.model import SentimentGRU
from grukit.tasks.sentiment.predict import explain, predict

VOCAB = [PAD, UNK, "good", "bad", "film", "a", "not", "very", "plot", "."]


def _model(seed=0):
    torch.manual_seed(seed)
    m = SentimentGRU(VOCAB, embed_dim=10, hidden_size=12, dropout=0.3, embed_dropout=0.2)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return m.eval()


def _oracle(m, ids):
    """One unpadded sentence through torch.nn.GRU (bidirectional) and hand-written pooling → logits (2,)."""
    gru = torch.nn.GRU(10, 12, 1, batch_first=True, bidirectional=True)
    gru.load_state_dict(m.gru.state_dict())
    out, _ = gru(m.embed(ids[None]))  # (1, T, 24)
    out = out[0]
    w = torch.softmax(m.attn(out).squeeze(-1), dim=0)  # (T,)
    feats = torch.cat([(w[:, None] * out).sum(0), out.max(0).values])
    return m.out(feats)


def test_logits_match_torch_oracle_and_ignore_padding():
    m = _model()
    sents = [[2, 4, 9], [6, 7, 2, 5, 8, 9, 3], [3]]
    T = max(map(len, sents))
    ids = torch.zeros(3, T, dtype=torch.long)
    for b, s in enumerate(sents):
        ids[b, : len(s)] = torch.tensor(s)
    lengths = torch.tensor([len(s) for s in sents])
    with torch.no_grad():
        batched = m(ids, lengths)
        for b, s in enumerate(sents):
            want = _oracle(m, torch.tensor(s))
            assert torch.allclose(batched[b], want, atol=1e-5), b
            alone = m(torch.tensor([s]), torch.tensor([len(s)]))[0]
            assert torch.allclose(batched[b], alone, atol=1e-6)


def test_save_load_round_trip(tmp_path):
    m = _model()
    grukit.save(m, tmp_path / "s.safetensors", task="sentiment")
    m2 = grukit.load(tmp_path / "s.safetensors")
    assert isinstance(m2, SentimentGRU) and m2.config == m.config and m2.encoder.vocab == VOCAB
    texts = ["a very good film .", "not good", "bad plot"]
    assert torch.equal(predict_proba(m, texts), predict_proba(m2, texts))


def test_predict_proba_keeps_order_and_matches_single_calls():
    m = _model()
    texts = ["a very good film .", "bad", "not a good plot , not at all", "film"]
    probs = predict_proba(m, texts, batch_size=2)
    for t, p in zip(texts, probs):
        ids = torch.tensor([m.encoder.encode(t)])
        with torch.no_grad():
            want = torch.softmax(m(ids, torch.tensor([ids.shape[1]])), -1)[0, 1]
        assert float(p) == pytest.approx(float(want), abs=1e-6)
    preds = predict(m, texts)
    assert [p.label for p in preds] == ["positive" if float(q) > 0.5 else "negative" for q in probs]


def test_explanation_is_the_occlusion_difference():
    m = _model()
    text = "not a very good film , unknownword ."
    e = explain(m, text)
    words = text.split()
    assert e.words == words and len(e.contributions) == len(words)
    assert e.known == sum(w in VOCAB for w in words) and e.n_words == len(words)
    assert e.unknown_words == [w for w in words if w not in VOCAB]
    assert e.p_positive == pytest.approx(float(predict_proba(m, [text])[0]), abs=1e-6)

    def log_odds(
        t,
    ):  # independent path: the text as typed, through the encoder and one forward call
        ids = torch.tensor([m.encoder.encode(t)])
        with torch.no_grad():
            z = m(ids, torch.tensor([ids.shape[1]]))[0].double()
        return float(z[1] - z[0])

    base = log_odds(text)
    for i in range(len(words)):
        edited = " ".join(
            words[:i] + [UNK] + words[i + 1 :]
        )  # '<unk>' is the unknown-word token itself
        assert e.contributions[i] == pytest.approx(base - log_odds(edited), abs=1e-5), words[i]
    assert e.contributions[words.index("unknownword")] == pytest.approx(0.0, abs=1e-6)
    assert any(abs(c) > 1e-3 for c in e.contributions)
    with pytest.raises(UserInputError, match="empty"):
        explain(m, "   ")
