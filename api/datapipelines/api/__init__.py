"""The REST facade of datapipelines: FastAPI over a watch-fed cache of the Kubernetes objects.

`main.create_app()` builds the app; `main.main()` is the `datapipelines-api` console script.
"""
