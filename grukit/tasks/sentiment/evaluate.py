"""Accuracy of a SentimentGRU on an SST-2 split, next to two baselines trained on the same train split."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from .data import BucketBatchSampler, SentimentDataset, collate
from .model import SentimentGRU

PRETRAINED = Path(__file__).resolve().parents[2] / "pretrained" / "sentiment-sst2.safetensors"


@torch.inference_mode()
def predict_proba(model: SentimentGRU, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
    """P(positive) for each text, (N,) float32, in the order given."""
    was = model.training
    model.eval()
    try:
        ds = SentimentDataset(list(texts), [0] * len(texts), model.encoder)
        sampler = BucketBatchSampler([len(x) for x in ds.ids], batch_size, shuffle=False)
        probs = torch.empty(len(texts))
        for batch in sampler:
            ids, lengths, _ = collate([ds[i] for i in batch])
            probs[batch] = torch.softmax(model(ids, lengths).float(), dim=-1)[:, 1]
    finally:
        model.train(was)
    return probs


def accuracy(model: SentimentGRU, texts: Sequence[str], labels: Sequence[int]) -> dict:
    """{"accuracy", "n"} of the model's argmax on (texts, labels)."""
    probs = predict_proba(model, texts)
    pred = (probs > 0.5).long()
    y = torch.tensor(list(labels), dtype=torch.long)
    return {"accuracy": float((pred == y).float().mean()), "n": len(labels)}


def scores(model: SentimentGRU, texts: Sequence[str], labels: Sequence[int]) -> dict:
    """Accuracy, F1 of the positive class, macro F1 and the confusion matrix (rows = true label, columns
    = predicted; index 0 = negative, 1 = positive) of the model on (texts, labels)."""
    from sklearn.metrics import confusion_matrix, f1_score

    probs = predict_proba(model, texts)
    pred_t = (probs > 0.5).long()
    y_t = torch.tensor(list(labels), dtype=torch.long)
    pred, y = pred_t.tolist(), y_t.tolist()
    return {
        "accuracy": float((pred_t == y_t).float().mean()),  # as :func:`accuracy` computes it
        "f1_positive": float(f1_score(y, pred, pos_label=1, zero_division=0)),
        "f1_macro": float(f1_score(y, pred, average="macro", labels=[0, 1], zero_division=0)),
        "confusion": confusion_matrix(y, pred, labels=[0, 1]).tolist(),
        "n": len(y),
    }


_LABEL_WORDS = {"0": 0, "1": 1, "negative": 0, "positive": 1, "neg": 0, "pos": 1}


def read_labelled_tsv(path: str | Path) -> tuple[list[str], list[int]]:
    """(texts, labels) of a ``text<TAB>label`` file: label 0/1 or negative/positive (any case); text is
    everything before the last tab. Blank lines are skipped; a first line whose label field reads
    ``label`` is a header. Anything else is refused with the file and line number.

    Raises:
        UserInputError: missing file, a folder, not UTF-8, a line without a tab, a bad label, empty text,
            or no labelled lines at all.
    """
    from ..._io import read_text_file, split_lines
    from ...errors import UserInputError

    raw = read_text_file(path, "--file")
    texts, labels = [], []
    for no, line in enumerate(split_lines(raw), start=1):
        if not line.strip():
            continue
        text, tab, label = line.rpartition("\t")
        if no == 1 and tab and label.strip().lower() == "label":
            continue
        value = _LABEL_WORDS.get(label.strip().lower())
        if not tab or value is None or not text.strip():
            raise UserInputError(
                f"--file {path}:{no}: expected 'TEXT<TAB>LABEL' with LABEL 0/1 or negative/positive "
                f"and non-empty text, got {line[:80]!r}"
            )
        texts.append(text.strip())
        labels.append(value)
    if not texts:
        raise UserInputError(f"--file {path}: no labelled lines (expected 'TEXT<TAB>LABEL' lines)")
    return texts, labels


def baselines(
    train_texts: Sequence[str],
    train_labels: Sequence[int],
    texts: Sequence[str],
    labels: Sequence[int],
) -> dict:
    """Accuracy of the majority class of train, and of a TF-IDF (word 1-2 grams) logistic regression
    trained on train (scikit-learn) — the bar a GRU has to clear."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    majority = int(sum(train_labels) * 2 >= len(train_labels))
    y = list(labels)
    maj_acc = sum(int(v == majority) for v in y) / len(y)
    vec = TfidfVectorizer(
        ngram_range=(1, 2), min_df=1, sublinear_tf=True, token_pattern=r"\S+", lowercase=True
    )
    X = vec.fit_transform(train_texts)
    clf = LogisticRegression(C=4.0, max_iter=2000)
    clf.fit(X, list(train_labels))
    lr_acc = float((clf.predict(vec.transform(texts)) == y).mean())
    return {"majority_class": {"accuracy": maj_acc}, "tfidf_logreg": {"accuracy": lr_acc}}


def load_model(checkpoint=None) -> tuple[SentimentGRU, str]:
    """(model, path): ``--checkpoint`` (a run folder or a .safetensors file) or the shipped model."""
    from ...train.run import load_task_model

    model, path = load_task_model(checkpoint, PRETRAINED, SentimentGRU, "sentiment")
    return model, str(path)


def make_loader(ds, batch_size: int, shuffle: bool, seed: int = 0) -> DataLoader:
    """Length-bucketed DataLoader of (ids, lengths, labels) batches."""
    sampler = BucketBatchSampler([len(x) for x in ds.ids], batch_size, seed=seed, shuffle=shuffle)
    return DataLoader(ds, batch_sampler=sampler, collate_fn=collate)
