"""Measurement tools, not tests; each module's docstring says how to run it.

    official_acdc_speed  the unmodified official ACDC script (a checkout of AiEson/CrossMatch,
                         imported through official.py) against ours, on the CPU or a GPU
    official_la_speed    the same for the official LA script (3D)
    bench_step           s/iteration, FLOPs and memory of ours and of its config variants
    profile_step         torch.profiler operator table of one iteration of ours
    shared_cores         s/iteration of `crossmatch-lite train` beside other busy processes
"""
