"""The Spark side: the session, data and Delta tables, the training pipeline and its search,
evaluation, batch scoring, and Spark model I/O. Only this package imports pyspark."""
