"""The supervisor side of an evaluation: it starts, feeds, stops and kills the workers.

Worker processes and the fork server they come from, the file watch and clean-up, the build cache,
one evaluation phase by phase (`evaluate`), a suite over devices (`runner`), the journal, and
`harness run` as plan, execute, write (`run`). It never runs candidate code and never prints.
"""
