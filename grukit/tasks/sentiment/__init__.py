"""Sentence sentiment on SST-2: ``grukit sentiment train|evaluate|predict``.

data.py      reading the three TSV files (CRLF train with a ``sentence`` header, LF dev/test with
             ``content``; test is labelled), the word vocabulary (built from train only), length-bucketed batches
model.py     SentimentGRU: embedding → bidirectional grukit.GRU → attention + max pooling → classifier
train.py     the Lightning module and the recipe's defaults
evaluate.py  accuracy on dev/test next to majority-class and bag-of-words baselines
predict.py   labels and probabilities for new sentences, with a word-by-word explanation (occlusion)
cli.py       the typer commands
"""
