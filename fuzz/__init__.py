"""Reliability tools: the scenario fuzzer, fault injection and hostile-input fuzzing."""
