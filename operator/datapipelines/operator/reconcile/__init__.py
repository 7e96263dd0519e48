"""Reconciles, one per key: ``connection`` (a connection and all its runs) and ``batch``.

Each is split into a pure decision over what the store holds (``decide``) and the actions it
returns, which :mod:`datapipelines.operator.executor` applies.
"""
