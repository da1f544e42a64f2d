"""``snnlab data list | prepare | verify``: what data is available and where, generate the
embedded/emulated sets, check real data in place. Calls the same functions the chapters call."""

from __future__ import annotations

import argparse
import json
import time

from snnlab.data.paths import DATA_ENV, data_root

__all__ = ["register", "data_status"]


def data_status(root: str | None = None) -> list[dict]:
    """One record per data set: name, kind, classes, item shape, where it is, whether it is
    ready. Cheap (file presence only, no checksums)."""
    from snnlab.data.emulated import EmulatedConfig, emulated_cache_path
    from snnlab.data.real import verify_dataset
    from snnlab.data.registry import DATASETS, dataset_info

    rows = []
    for name in DATASETS:
        info = dataset_info(name)
        if name == "digits":
            where, ready, note = "inside scikit-learn (no download)", True, "embedded"
        elif name == "nmnist-emulated":
            path = emulated_cache_path(EmulatedConfig(), root)
            where, ready = str(path), path.is_file()
            note = "cached" if ready else "not generated yet: snnlab data prepare (or generated on first use)"
        else:
            status = verify_dataset(name, root, checksums=False)
            where, ready = status["folder"], status["ok"]
            note = (f"{status['files']} files" if status["present"] else "missing") + \
                   ("" if ready or not status["present"] else "; " + "; ".join(status["problems"][:2]))
        rows.append({"name": name, "kind": info["kind"], "classes": info["num_classes"],
                     "input_shape": list(info["input_shape"]), "ready": ready, "where": where,
                     "note": note})
    return rows


def _list(args: argparse.Namespace) -> int:
    rows = data_status(args.root)
    if args.json:
        print(json.dumps({"root": str(data_root(args.root)), "datasets": rows}, indent=2))
        return 0
    print(f"data root: {data_root(args.root)}  (set by --root, else ${DATA_ENV}, else ~/.cache/snnlab)")
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        mark = "ready  " if r["ready"] else "missing"
        shape = "x".join(map(str, r["input_shape"]))
        print(f"  {r['name']:<{width}}  {mark}  {r['kind']:<6}  {r['classes']:>3} classes  "
              f"[{shape}]  {r['note']}\n  {'':<{width}}  {r['where']}")
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from snnlab.data.emulated import EmulatedConfig, EmulatedRecordings, prepare_emulated_digits
    from snnlab.data.registry import _spec

    names = args.names or ["digits", "nmnist-emulated"]
    for name in names:
        spec = _spec(name)
        if not spec.embedded:
            raise ValueError(f"{name!r} is a real data set snnlab cannot generate; copy it under "
                             f"{data_root(args.root)} and run `snnlab data verify {name}`.")
        if name == "digits":
            print("digits: embedded in scikit-learn, nothing to prepare.")
            continue
        options = {} if args.contrast is None else {"contrast": args.contrast}
        if args.limit is not None:
            options["limit"] = args.limit
        config = EmulatedConfig.from_options(seed=args.seed, **options)
        start = time.perf_counter()
        path = prepare_emulated_digits(config, args.root, progress=not args.quiet, force=args.force)
        seconds = time.perf_counter() - start
        recordings = EmulatedRecordings.load(path)
        per = (recordings.offsets[1:] - recordings.offsets[:-1])
        print(f"{name}: {len(recordings)} recordings, {int(per.sum())} events "
              f"(mean {per.mean():.0f} per recording), {path.stat().st_size / 1e6:.1f} MB at {path} "
              f"({seconds:.1f} s)")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from snnlab.data.real import REAL_DATASETS, verify_dataset

    names = args.names or list(REAL_DATASETS)
    failed = False
    for name in names:
        if name not in REAL_DATASETS:
            raise ValueError(f"verify checks real data sets: {', '.join(REAL_DATASETS)}; got {name!r}.")
        status = verify_dataset(name, args.root, checksums=not args.no_checksums)
        if status["ok"]:
            print(f"{name}: OK, {status['files']} files in {status['folder']}")
        elif not status["present"]:
            print(f"{name}: missing (looked in {status['folder']})")
            failed = failed or bool(args.names)
        else:
            print(f"{name}: PROBLEMS in {status['folder']}:")
            for problem in status["problems"]:
                print(f"  - {problem}")
            failed = True
    return 1 if failed else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="list, generate and verify data sets")
    sub = parser.add_subparsers(dest="data_command", metavar="<list|prepare|verify>", required=True)

    def add_root(p):
        p.add_argument("--root", default=None, help=f"data root (default ${DATA_ENV} or ~/.cache/snnlab)")

    p = sub.add_parser("list", help="what data sets exist, where they are looked for, which are ready")
    add_root(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_list)

    p = sub.add_parser("prepare", help="generate the embedded/emulated data sets into the cache")
    add_root(p)
    p.add_argument("names", nargs="*", help="digits and/or nmnist-emulated (default: both)")
    p.add_argument("--force", action="store_true", help="regenerate even if cached")
    p.add_argument("--seed", type=int, default=0, help="noise seed of the recordings (default 0)")
    p.add_argument("--contrast", type=float, default=None, help="DVS contrast threshold C (default 0.2)")
    p.add_argument("--limit", type=int, default=None,
                   help="only the first N digits (a quick look; a separate cache file)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_prepare)

    p = sub.add_parser("verify", help="check real data sets in place (files, MD5 sums for CIFAR)")
    add_root(p)
    p.add_argument("names", nargs="*", help="cifar10 cifar100 dvsgesture cifar10dvs (default: all)")
    p.add_argument("--no-checksums", action="store_true", help="skip the MD5 sums (faster)")
    p.set_defaults(func=_verify)
