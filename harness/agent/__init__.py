"""`harness agent`: the LLM kernel-writing loop on top of the harness's evaluation (docs/agent.md).

One job per module:

- `seams`: every import from the rest of the package (the only place to re-point after a reorganisation)
- `client`, `retry`: the OpenAI-compatible endpoint, retries and Retry-After
- `prompts` (+ templates/default.txt): system and user prompts; `extract`: the code in a reply
- `conversation`: the messages of each request; `stop`: when a conversation ends
- `evaluation`: one attempt through `harness eval`'s evaluation; `dispatch`: evaluations one at a time
- `feedback`: what the model is told about a result; `metrics`: reward and pass@k
- `records`, `attempt_log`: an attempt and attempts.jsonl; `layout`: paths and team names
- `figures`: per-case and per-run figures; `artifact`: the agent-run and submission payloads
- `recorder`: an attempt's files on disk at once; `loop`: the conversations; `settings`: a run's options
- `session`: the flow behind the command; `display`: live progress and tables (CLI only)
- `leaderboard`: re-scoring team submissions and ranking them
"""
