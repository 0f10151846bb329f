"""harness: Hydra-composed experiments on our engine, one Ray task per run, results as JSON/CSV.
Top layer: CLI -> config/sweep -> runner (Ray) -> trial (engine) -> store -> report.
"""
