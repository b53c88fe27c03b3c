"""Training ATPN: dataset readers, teacher labels, augmentation, losses and the training loop."""
