"""Entry point: python3 -m analysis SUBCOMMAND RESULTS_DIR [options]."""
import argparse
import sys

from analysis import answers, atlas, best, exemplars, featuremaps, fgsm, grid, invert, robust, search
from analysis.index import AnalysisError


def main(argv=None):
    p = argparse.ArgumentParser(prog="python3 -m analysis", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    best.add_parser(sub)
    answers.add_parser(sub)
    grid.add_parser(sub)
    fgsm.add_parser(sub)
    invert.add_parser(sub)
    featuremaps.add_parser(sub)
    atlas.add_parser(sub)
    exemplars.add_parser(sub)
    search.add_parser(sub)
    robust.add_parser(sub)
    args = p.parse_args(argv)
    try:
        return args.run(args)
    except AnalysisError as e:
        print(f"analysis {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
