"""Everything that defines an agent run, as saved in the header of attempts.jsonl.

`--resume` continues with the saved settings, so a resumed run asks the same model the same way and
stops by the same rule. Only how the endpoint is reached may change on resume (a server restarted on
another port, a new key variable, more patience with timeouts): `RESUME_OVERRIDES`. The API key
itself is never part of the settings: only the name of the variable that holds it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from harness.agent.client import EndpointSettings, public_url
from harness.agent.seams import BadInput, EvalConfig, TimingConfig
from harness.agent.stop import StopRule

RESUME_OVERRIDES = ("base_url", "api_key_env", "request_timeout_s", "max_retries", "concurrency")
EVAL_DEFAULTS: dict[str, Any] = {
    "trials": 3, "timeout_s": 300.0, "seed": None, "budget_ms": 400.0, "rounds": 10, "flush_cache": None,
    "output_limit": 16384, "isolation": "process", "build_cache": None,
}  # fmt: skip


def eval_config(backend: str, options: dict[str, Any]) -> EvalConfig:
    """The evaluation configuration the eval options (`EVAL_DEFAULTS` keys) describe, as `harness eval` builds it."""
    e = {**EVAL_DEFAULTS, **{k: v for k, v in options.items() if k in EVAL_DEFAULTS}}
    return EvalConfig(
        backend=backend,
        trials=e["trials"],
        timeout_s=e["timeout_s"],
        seed=e["seed"],
        timing=TimingConfig(budget_ms=e["budget_ms"], rounds=e["rounds"], flush_cache=e["flush_cache"]),
        output_limit_bytes=e["output_limit"],
        isolation=e["isolation"],
        build_cache=e["build_cache"],
    )


@dataclass(frozen=True)
class AgentSettings:
    # what to solve
    suite: str
    team: str
    model: str
    base_url: str
    backend: str = "cpu"
    dsl: str = "cpp"
    tiers: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    keyword: str | None = None
    device: str | None = None
    # the endpoint
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float | None = None
    max_tokens: int | None = None
    request_timeout_s: float = 600.0
    max_retries: int = 3
    # the loop
    turns: int = 3
    until: str = "max-turns"
    patience: int | None = None
    rollouts: int = 1
    context: str = "last"
    concurrency: int = 4
    prompt_template: str | None = None
    examples: str | None = None
    # the evaluation (as `harness eval`)
    eval: dict[str, Any] = field(default_factory=dict)

    def stop_rule(self) -> StopRule:
        return StopRule(turns=self.turns, until=self.until, patience=self.patience)

    def endpoint(self, api_key: str | None) -> EndpointSettings:
        return EndpointSettings(
            base_url=self.base_url,
            model=self.model,
            api_key=api_key,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            timeout_s=self.request_timeout_s,
            max_retries=self.max_retries,
        )

    def eval_config(self) -> EvalConfig:
        return eval_config(self.backend, self.eval)

    def to_json(self) -> dict[str, Any]:
        """JSON for the log header and the artifacts: no key, and the URL without user info or query."""
        data = dataclasses.asdict(self)
        data["base_url"] = public_url(self.base_url)
        data["tiers"], data["names"] = list(self.tiers), list(self.names)
        return data

    @classmethod
    def from_json(cls, data: Any, where: str) -> AgentSettings:
        """Settings saved by `to_json`; BadInput naming ``where`` when they are unusable."""
        if not isinstance(data, dict):
            raise BadInput(f"{where}: the log header lacks the run's settings; start the run again")
        known = {f.name for f in dataclasses.fields(cls)}
        try:
            values = {k: v for k, v in data.items() if k in known}
            values["tiers"], values["names"] = tuple(values.get("tiers", ())), tuple(values.get("names", ()))
            settings = cls(**values)
            settings.stop_rule()
        except (TypeError, ValueError) as exc:
            raise BadInput(f"{where}: the saved settings are unusable ({exc}); start the run again") from exc
        return settings

    def with_overrides(self, overrides: dict[str, Any]) -> AgentSettings:
        """These settings with the endpoint options given again on `--resume`."""
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if k in RESUME_OVERRIDES})
