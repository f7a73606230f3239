"""Measurement tools, not tests; each module's docstring says how to run it.

    bench_step         s/iteration of ours against official_loop, a re-creation of the
                       official ACDC loop (not the official code)
    profile_step       torch.profiler operator table of one iteration of each
    official_la_speed  the unmodified official LA script (a checkout of AiEson/CrossMatch,
                       imported through official.py) against ours
    gpu_session        one command for a GPU machine: environment, CUDA tests, speed table,
                       the paper protocol in resumable chunks (session_steps, session_protocol)
"""
