"""Ginie's benchmarks: latency, fan-out, REST calls, console cost and memory, beside baselines.

Run `python -m benchmarks [--quick] [--json PATH]`. Each measurement is one module with a
`run(quick: bool, results: Results) -> Group` function; `report` prints the table and writes JSON.
Everything runs on 127.0.0.1, is bounded in time and stops by itself.
"""
