"""Polyphonic music modelling: a GRU over piano-roll frames with an 88-way independent-Bernoulli output.

The four piano-roll sets of Boulanger-Lewandowski et al. (ICML 2012) — JSB Chorales, Nottingham, MuseData,
Piano-midi.de — with their standard train/valid/test splits. The metric is the standard negative
log-likelihood per time step (see :func:`grukit.tasks.music.model.nll_sums`), compared with Chung et al.
2014, Table 2.

    data.py      loading the .mat files, length-bucketed batches
    model.py     :class:`MusicGRU` (config + from_config) and the NLL
    train.py     Lightning training with truncated BPTT (carried state) through ``grukit.train.fit``
    evaluate.py  NLL per step on a split, next to the paper's numbers
    generate.py  sampling, piano roll ↔ MIDI, piano-roll PNG
    cli.py       ``grukit music train|evaluate|generate``
"""

from __future__ import annotations

#: Test NLL per time step from Chung et al. 2014 ("Empirical Evaluation of Gated Recurrent Neural Networks
#: on Sequence Modeling"), Table 2, and the best TCN-paper numbers (Bai et al. 2018) where reported.
PAPER = {
    "jsb": {"gru": 8.54, "lstm": 8.67, "tcn": 8.10},
    "nottingham": {"gru": 3.23, "lstm": 3.20, "tcn": 3.07},
    "musedata": {"gru": 5.99, "lstm": 6.23},
    "piano": {"gru": 8.82, "lstm": 9.03},
}

__all__ = ["PAPER"]
