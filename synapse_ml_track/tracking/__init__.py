"""The tracking layer: MLflow runs, the HTTP retry policy, the registry and its champion, the quality
gate, the runs report, and Azure Machine Learning with its credentials. Nothing here imports Spark
(tests/unit/test_tracking_layer.py), so `check` and `report` start no Spark-side import."""
