"""PyTorch eager: the reference every other engine is proved against, and the fallback of
last resort on every device torch sees (cpu, cuda, rocm, mps)."""
