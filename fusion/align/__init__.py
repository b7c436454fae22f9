"""Cross-tokenizer alignment: token texts, DTW, vocabulary mapping, projection, the stage."""
