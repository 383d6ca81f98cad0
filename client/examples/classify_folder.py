"""Classify every image in a folder with the SDK and print each file's top class.

    python client/examples/classify_folder.py http://127.0.0.1:8000 photos/ --username alice
    (the password is read from MLSVC_PASSWORD, or asked for)

It prints one line per file, "path<TAB>label<TAB>probability" or "path<TAB>ERROR<TAB>slug", then a count;
it exits 1 when a file failed.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

from mlservice_client import Client
from mlservice_client.inputs import expand


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("url", help="the API's base URL")
    parser.add_argument("folder", type=Path, help="a folder of images (searched recursively)")
    parser.add_argument("--username", required=True)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--top-k", type=int, default=1)
    args = parser.parse_args(argv)
    password = os.environ.get("MLSVC_PASSWORD") or getpass.getpass()

    client = Client(args.url, username=args.username, password=password)
    failed = 0
    for item in client.classify_many(
        expand([str(args.folder)]), concurrency=args.concurrency, top_k=args.top_k
    ):
        if item.classification is not None and item.classification.top1 is not None:
            top = item.classification.top1
            print(f"{item.source}\t{top.label}\t{top.probability:.4f}")
        else:
            failed += 1
            print(f"{item.source}\tERROR\t{item.error.slug if item.error else 'no_prediction'}")
    print(f"{failed} of the files failed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
