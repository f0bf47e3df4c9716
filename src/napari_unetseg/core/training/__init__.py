"""Teaching a model: targets, augmentation, training data, the loss, the training loop,
threshold tuning on held-out images, and fine-tuning on a lab's corrected images."""
