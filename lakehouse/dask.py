"""Dask integration: read a table as a dask DataFrame, write one in a single atomic commit.

Needs the ``dask`` extra (``pip install 'lakehouse-format[dask]'``); dask is imported only when one
of these functions is called. Reading plans on the driver (pruning by partition values and
statistics happens before anything is scheduled) and reads one partition per data file on the
workers with :func:`lakehouse.read_task`. Writing runs :func:`lakehouse.write_files` on the workers,
one call per partition, and commits every file from the driver with
:meth:`lakehouse.Table.commit_files`: readers see all of the write or none of it. See docs/dask.md.

This is the public path; the code lives in :mod:`lakehouse.integrations.dask`.

Example:
    >>> from lakehouse.dask import read_dask, to_lakehouse
    >>> read_dask.__module__
    'lakehouse.integrations.dask'
"""

from __future__ import annotations

from .integrations.dask import read_dask, to_lakehouse

__all__ = ["read_dask", "to_lakehouse"]
