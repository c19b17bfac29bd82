"""Character-level language modelling on tiny-shakespeare: ``grukit text train|generate|perplexity``.

data.py      the corpus, its documented split (first 90% train, last 10% valid), the character vocabulary and
             the truncated-BPTT batch layout (state carried across batches)
model.py     CharLM: embedding → multi-layer grukit.GRU → linear, with a one-character ``step``
train.py     the Lightning module (carried state) and the recipe's defaults
evaluate.py  nats/bits per character and perplexity over a whole split
generate.py  streaming sampling with the GRU's step API (no recomputation of the prefix)
cli.py       the typer commands
"""
