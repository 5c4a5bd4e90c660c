"""The float32 network: layers, activations, losses, and their viper kernels."""
