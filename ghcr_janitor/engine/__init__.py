"""The engine: one run of the janitor, gather -> plan -> apply, over targets whose stores stay open
for the whole run (`engine.run`). The CLI commands are thin shells over it."""
