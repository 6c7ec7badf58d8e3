"""The decoded-image cache's key (inode, size, mtime, ctime and label of every file) against
listing the tree, a digest of every file's bytes, and loading the cached tensor, on one
ImageFolder tree (default: the 60k-image CIFAR-10 JPEG copy). Prints seconds (the best of
three, file metadata cached by the OS after the first) and ratios to the listing, measured
in the same run.
    python benchmarks/cache_key.py [DATA_DIR]
"""
from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path


def best(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    from resnet_ablate.data import folders

    root = Path(sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data/cifar10-jpg")
    found = folders.splits(root)
    classes = folders.classes_of(found["train"])
    listing = {s: folders.list_images(found[s], classes) for s in ("train", "test")}
    listed = best(lambda: [folders.list_images(found[s], classes) for s in listing])
    n = sum(map(len, listing.values()))
    keyed = best(lambda: [folders.cache_key(found[s], files) for s, files in listing.items()])
    digested = best(lambda: [hashlib.sha1(path.read_bytes()).digest()
                             for files in listing.values() for path, _ in files])
    t = time.perf_counter()
    for s, files in listing.items():
        folders.decode(found[s], files)  # decodes once (or hits an earlier run's cache)
    first = time.perf_counter() - t
    hit = best(lambda: [folders.decode(found[s], files) for s, files in listing.items()])
    print(f"{n} images under {root}")
    for name, sec in (("listing", listed), ("cache key (stat)", keyed),
                      ("digest of the bytes", digested), ("decode (first run)", first),
                      ("cache hit (key + load)", hit)):
        print(f"{name:24s} {sec:8.3f} s  {sec / listed:6.2f}x listing")
    print(f"the key is {100 * keyed / hit:.0f}% of a cache hit")


if __name__ == "__main__":
    main()
