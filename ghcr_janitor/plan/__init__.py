"""From facts to a pinned, safe plan: the planner, the safety rules, plan files (pure)."""
