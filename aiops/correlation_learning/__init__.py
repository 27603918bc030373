"""Learned alert correlation: which open incident, if any, a new alert belongs to.

A rule of kind `learned` scores each (alert, candidate incident) pair from five kinds of
evidence and joins the best candidate when the confidence passes `JOIN_THRESHOLD`:

- label overlap: the share of the alert's label pairs (IDF-weighted, so `env=prod` counts
  for little and `namespace=orders` for much) that the incident's alerts carry;
- title similarity: TF-IDF cosine of character 3-grams of the titles;
- time proximity: decay with the gap to the incident's nearest alert, over the rule's window;
- history: how often the two kinds of alerts (signatures: alertname and service) fired within
  a few minutes of each other before, and how often people merged them (together) or split
  them (apart) — `memory` keeps those counts in tables, decayed and bounded;
- the same signature already in the incident (what a label rule would group).

`scoring` is pure Python (features, the logistic combination, the reason in words);
`memory` reads and updates the learned tables; `grouping` places one batch of alerts.
"""
