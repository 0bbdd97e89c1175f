"""Figure recipes; the PNGs and their CSV data live beside them."""
