"""vizsweep analysis: questions to a results directory's index, and pictures from its shards.

    python3 -m analysis best        RESULTS_DIR [--metric M] [--layer L] [--pareto] [--csv FILE]
    python3 -m analysis grid        RESULTS_DIR -o FILE.png [--layer L] [--rows D --cols D] [--units 0-9]
    python3 -m analysis fgsm        RESULTS_DIR -o FILE.png [--setting S] [--examples N]
    python3 -m analysis invert      RESULTS_DIR -o FILE.png [--setting S] [--layers L,...]
    python3 -m analysis featuremaps RESULTS_DIR -o FILE.png [--layer L] [--image I]
    python3 -m analysis atlas       RESULTS_DIR -o SITE_DIR [--metric M]

Read-only: safe while a sweep is still running."""
import os

# A running sweep holds HDF5's lock on its shards; readers open them without it (see
# analysis.index.Shards). h5py >= 3.5 takes locking=False; older ones read this variable.
os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")
