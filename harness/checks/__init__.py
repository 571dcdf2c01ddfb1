"""What the scenarios of a task check, shared by its public and hidden scenarios.

One module a task, named after what it checks: `metadata` (an answer's metadata against the
ledger), `deadlines` (a request cut off at REQUEST_DEADLINE), `jobs` (a batch and its items),
`cards` (a paper's card read from the model's JSON); `errors`, the shape every error has; and
`examples`, Hypothesis drawing from the seed alone.
"""
