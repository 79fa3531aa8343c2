"""Gathering facts: the inventory, the manifest cache, the first-seen ledger, sessions."""
