"""The jobs a CLI runs, assembled from a Config: the camera loop (`run`) and the benchmark."""
