"""Returns (issue 16): goods back before money back; the carrier adapter tracks them."""
