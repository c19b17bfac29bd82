"""Scoring with sacreBLEU (BLEU with its default 13a tokenization, and chrF).

- ``bleu`` / ``chrf``: every test pair is one line, its own French sentence the single reference (an English
  sentence with several translations appears once per translation, each time with a fresh decode).
- ``bleu_short`` / ``chrf_short``: the same on the pairs whose English side has ≤ 10 words.
- ``bleu_multiref``: each distinct English sentence once, all its French translations as references.

Decoding is deterministic, so each distinct English sentence is translated once and reused.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from . import data as D
from .predict import Bundle, translate_ids

SHORT_WORDS = 10


def score(hyps: Sequence[str], refs: Sequence[str]) -> dict[str, float]:
    """Single-reference corpus BLEU and chrF (sacreBLEU defaults)."""
    import sacrebleu

    return {
        "bleu": round(sacrebleu.corpus_bleu(list(hyps), [list(refs)]).score, 2),
        "chrf": round(sacrebleu.corpus_chrf(list(hyps), [list(refs)]).score, 2),
    }


def multiref_bleu(hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> float:
    """Corpus BLEU with a variable number of references per line (missing ones padded with None)."""
    import sacrebleu

    k = max(len(r) for r in refs)
    streams = [[r[j] if j < len(r) else None for r in refs] for j in range(k)]
    # sacrebleu takes None for a line with fewer references (its annotation says str)
    return round(sacrebleu.corpus_bleu(list(hyps), streams).score, 2)  # type: ignore[arg-type]


def evaluate(
    bundle: Bundle,
    pairs: Sequence[tuple[str, str]],
    beam_size: int = 5,
    length_penalty: float = 1.0,
    batch_size: int = 64,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Translate the English side of ``pairs`` and score it (see the module docstring).

    ``progress(n)`` is called as distinct English sentences get translated (``n`` at a time)."""
    t0 = time.perf_counter()
    groups = D.group_references(pairs)  # [(english, [french, ...])]
    sources = [en for en, _ in groups]
    ids = bundle.src_tok.encode_batch(sources)
    tokens, _ = translate_ids(
        bundle.model, ids, beam_size, length_penalty, batch_size, progress=progress
    )
    hyp_of = {en: bundle.tgt_tok.decode(t) for en, t in zip(sources, tokens)}
    hyps = [hyp_of[en] for en, _ in pairs]
    refs = [fr for _, fr in pairs]
    short = [i for i, (en, _) in enumerate(pairs) if len(en.split()) <= SHORT_WORDS]
    full = score(hyps, refs)
    sh = score([hyps[i] for i in short], [refs[i] for i in short])
    multi = multiref_bleu([hyp_of[en] for en in sources], [frs for _, frs in groups])
    import sacrebleu

    return {
        "model": {
            "bleu": full["bleu"],
            "chrf": full["chrf"],
            "bleu_short": sh["bleu"],
            "chrf_short": sh["chrf"],
            "bleu_multiref": multi,
        },
        "subsets": {
            "pairs": len(pairs),
            "short_pairs": len(short),
            "distinct_english": len(sources),
            "short_max_english_words": SHORT_WORDS,
        },
        "decoding": {
            "beam_size": beam_size,
            "length_penalty": length_penalty,
            "sacrebleu": sacrebleu.__version__,
            "bleu_signature": "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp",
            "decode_time_s": round(time.perf_counter() - t0, 1),
        },
        "examples": [{"en": en, "hyp": hyp_of[en], "refs": frs} for en, frs in groups[:8]],
    }
