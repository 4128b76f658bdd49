"""vizsweep analysis: questions to a results directory's index, and pictures from its shards.

    python3 -m analysis best RESULTS_DIR [--metric M] [--layer L] [--csv FILE]
    python3 -m analysis grid RESULTS_DIR -o FILE.png [--layer L] [--units N]

Read-only: safe while a sweep is still running."""
