"""The Spark side: the session, data and Delta tables, the training pipeline and its search,
evaluation, batch scoring, and Spark model I/O. Only this package imports pyspark, and the training
job (synapse_ml_track/train_job.py) that runs it."""
