"""Further CLI commands, one module per concern; each module exports ``COMMANDS`` (click commands).

Modules here must keep heavy imports (torch, scipy, docker) inside the command functions so that
`harness --help` and `harness validate` stay fast and torch-free.
"""
