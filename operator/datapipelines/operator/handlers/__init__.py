"""The work behind each kopf handler registered in :mod:`datapipelines.operator.main`."""
