"""The int8 network (QNetwork, QDense) and its kernels; the quantizer apart in `quantize`."""
