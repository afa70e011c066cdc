"""Deployment to a Synapse workspace: the plan (`plan`, pure) and the Azure SDK target it runs against
(`synapse`). No Spark here."""
