"""Triton kernels of the cuda device, one module per kernel family (memory, ewise, reduce, matmul,
conv). Kernel layer: flat launchers over 1-D float32 torch buffers, sizes and strides; they never
import `engine` and never allocate (every launcher writes into the caller's `out`).
"""
