"""digits-data: verified MNIST, the curated 0/5/8 subset and its format, and a generated handwriting set."""
