"""Judgements over results and candidates: A/B verdicts and their statistics, the eval report for agents,
merging shards, the speed of light, and the static flags of a candidate's source."""
