#!/usr/bin/python3
"""Tags the characters inside round brackets with the bundled `brackets`
model (models/brackets/README.md): prints each string and, under it, a `^`
under every character the model tags (probability > 0.5).

    /usr/bin/python3 client/python/example.py ["call(foo bar) now" ...]
        [--server localhost:8001]

Needs a running server with the bundled models (scripts/serve.sh) and the
build's stubs (scripts/build.sh writes them into build/python).
"""

import argparse
import os
import sys

# Run from the source tree: keep it free of __pycache__ folders.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from biserve_client import BiserveError, Client  # noqa: E402

# id = 1 + the character's index here (id 0 is reserved).
VOCABULARY = " ()abcdefghijklmnopqrstuvwxyz"


def encode(text):
    ids = []
    for position, char in enumerate(text):
        index = VOCABULARY.find(char)
        if index < 0:
            raise ValueError(
                "%r: character %d (%r) is not in the model's vocabulary "
                "(space, brackets, a-z)" % (text, position, char))
        ids.append(1 + index)
    return ids


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("strings", nargs="*", default=["call(foo bar) now"],
                        help='strings to tag (default: "call(foo bar) now")')
    parser.add_argument("--server", default="localhost:8001",
                        help="biserve_server's gRPC address (host:port)")
    parser.add_argument("--model", default="brackets")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds to wait for the answer")
    args = parser.parse_args()

    try:
        sequences = [encode(text) for text in args.strings]
    except ValueError as error:
        print("example.py: %s" % error, file=sys.stderr)
        return 2
    # The model has no masking: never send an empty string (or pad one).
    nonempty = [i for i, ids in enumerate(sequences) if ids]
    outputs = {}
    if nonempty:
        with Client(args.server, timeout_s=args.timeout) as client:
            try:
                result = client.predict(
                    args.model, [sequences[i] for i in nonempty])
            except BiserveError as error:
                print("example.py: %s (server %s)" % (error, args.server),
                      file=sys.stderr)
                return 1
        for i, sequence in zip(nonempty, result.sequences):
            outputs[i] = sequence.output  # [length, 1] probabilities

    for i, text in enumerate(args.strings):
        probabilities = outputs.get(i, [])
        marks = "".join("^" if p[0] > 0.5 else " " for p in probabilities)
        print(text)
        print(marks.rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
