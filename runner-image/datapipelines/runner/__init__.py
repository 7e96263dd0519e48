"""datapipelines.runner — one PipelineConnection sync with dlt (what a PipelineRun's pod runs).

Modules, one job each: `config` (the spec, env), `secrets` (secret files, redaction), `sources`,
`destinations`, `dltenv` (dlt's settings), `sync` (run + count rows in the destination),
`progress` + `kube` (live status), `result` (the result contract), `errors` (one-line causes,
exit codes), `main` (the CLI), `demo_source` (a paginated HTTP source for demos and tests).
It must not import kopf, fastapi, kubernetes clients or the operator. See docs/runner.md.
"""
