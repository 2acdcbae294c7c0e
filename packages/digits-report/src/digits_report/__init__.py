"""digits-report: one HTML page on the data, the training and the model's errors."""
