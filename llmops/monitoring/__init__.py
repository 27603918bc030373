"""LLM monitors: the SQL that measures a monitor's metric over its window (`rules`)."""
