"""datapipelines.runner — one PipelineConnection sync with dlt (what a PipelineRun's pod runs).

Modules, one job each: `config` (the spec, env), `secrets` (secret files, redaction), `sources`,
`destinations`, `dltenv` (dlt's settings), `sync` (the attempts and dlt's steps), `journal`
(the load journal in the destination), `recovery` (finish or roll back earlier attempts),
`retries` (the pauses between attempts), `counting` (rows counted in the destination),
`schemachanges` (what a run changed in the schema), `arrowpages` (flat pages as Arrow tables),
`restclient` (the rest_api HTTP session), `report`, `progress` + `kube` (live status), `result`
(the result contract), `errors` (one-line causes, exit codes), `main` (the CLI), `demo_source`
(a paginated HTTP source for demos, tests and the benchmark).
It must not import kopf, fastapi, kubernetes clients or the operator. See docs/runner.md.
"""
