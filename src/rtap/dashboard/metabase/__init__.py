"""Metabase as code: provision Metabase from the dashboards definition (``rtap metabase provision``)."""

from rtap.dashboard.metabase.provision import ProvisionReport, metabase_sql, provision

__all__ = ["ProvisionReport", "metabase_sql", "provision"]
