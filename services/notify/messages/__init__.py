"""Customer messages: one correspondence per refund, its templates, channels, senders and feed."""
