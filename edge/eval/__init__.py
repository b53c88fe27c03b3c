"""Accuracy evaluation: landmark NME/FR/AUC, head-pose MAE and tracking on synthetic sequences."""
