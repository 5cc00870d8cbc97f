"""The audit trail: OCSF events per request, their writer, sinks, journal and hash chain."""
