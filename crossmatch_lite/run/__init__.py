"""Run machinery: the run folder (identity, lock), checkpoints that load without running
code, atomic writes, device/threads/bf16, exact-resume sampling, TensorBoard. Nothing
here changes what a run computes."""
