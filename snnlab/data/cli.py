"""``snnlab data list | prepare | verify | fetch``: what data is available and where, generate the
embedded/emulated sets, check real data in place, download the real sets (only when asked).
Calls the same functions the chapters call."""

from __future__ import annotations

import argparse
import json
import time

from snnlab.data.paths import DATA_ENV, data_root
from snnlab.errors import CorruptFileError

__all__ = ["register", "data_status"]


def data_status(root: str | None = None) -> list[dict]:
    """One record per data set: name, kind, classes, item shape, where it is, whether it is
    ready. Cheap (file presence only, no checksums)."""
    from snnlab.data.emulated import EMULATED_PRESETS, EmulatedConfig, emulated_cache_path
    from snnlab.data.real import verify_dataset
    from snnlab.data.registry import DATASETS, dataset_info

    presets = {p.dataset_name: p.name for p in EMULATED_PRESETS.values()}
    rows = []
    for name in DATASETS:
        info = dataset_info(name)
        if name == "digits":
            where, ready, note = "inside scikit-learn (no download)", True, "embedded"
        elif name in presets:
            path = emulated_cache_path(EmulatedConfig.from_preset(presets[name]), root)
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
    from snnlab.data.emulated import EMULATED_PRESETS, EmulatedConfig, EmulatedRecordings, ensure_emulated_cache
    from snnlab.data.registry import _spec

    presets = {p.dataset_name: p.name for p in EMULATED_PRESETS.values()}
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
        config = EmulatedConfig.from_preset(presets[name], seed=args.seed, **options)
        start = time.perf_counter()
        path, generated = ensure_emulated_cache(config, args.root, progress=not args.quiet, force=args.force)
        try:
            recordings = EmulatedRecordings.load(path)
        except CorruptFileError:  # a damaged cache: generate it again
            path, generated = ensure_emulated_cache(config, args.root, progress=not args.quiet, force=True)
            recordings = EmulatedRecordings.load(path)
        seconds = time.perf_counter() - start
        per = (recordings.offsets[1:] - recordings.offsets[:-1])
        print(f"{name}: {len(recordings)} recordings, {int(per.sum())} events "
              f"(mean {per.mean():.0f} per recording), {path.stat().st_size / 1e6:.1f} MB at {path} "
              f"({'generated' if generated else 'already prepared'}, {seconds:.1f} s)")
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


_FETCH_EXAMPLES = """examples:
  snnlab data fetch cifar10                      # ~163 MB into $SNNLAB_DATA (else ~/.cache/snnlab)
  snnlab data fetch nmnist dvsgesture --root /data/snn
  snnlab data fetch cifar10 --mirror https://mirror.example.org/datasets   # <mirror>/<archive file name>
  snnlab data fetch --list                       # URLs, checksums and where each was published (JSON)

Each archive is checked against its published md5/sha256 before anything is extracted; an
interrupted download resumes where it stopped when the command is run again."""


def _fetch(args: argparse.Namespace) -> int:

    from snnlab.data.fetch import FETCHABLE, FetchError, fetch_dataset, sources_table
    from snnlab.data.real import verify_dataset

    if args.list:
        print(json.dumps(sources_table(), indent=2))
        return 0
    if not args.names:
        raise ValueError(f"name the data set(s) to fetch: {', '.join(FETCHABLE)} (or --list).")
    for name in args.names:
        if name not in FETCHABLE:
            raise ValueError(f"snnlab data fetch knows {', '.join(FETCHABLE)}; got {name!r} (the embedded "
                             f"data sets need no download: snnlab data prepare).")
    if args.retries < 0:
        raise ValueError(f"--retries must be >= 0, got {args.retries}.")
    if not args.timeout > 0:
        raise ValueError(f"--timeout must be > 0 seconds, got {args.timeout}.")
    failed = False
    for name in args.names:
        try:
            fetch_dataset(name, args.root, mirror=args.mirror, force=args.force, keep_archives=args.keep_archives,
                          retries=args.retries, timeout=args.timeout, progress=not args.quiet)
        except FetchError as error:  # one line and exit 1 at the top level (snnlab.errors), naming the data set
            error.args = (f"{name}: {error}",)
            raise
        if args.no_verify:
            continue
        status = verify_dataset(name, args.root)
        if status["ok"]:
            print(f"{name}: ready, {status['files']} files in {status['folder']} (snnlab data verify: OK)")
        else:
            failed = True
            print(f"{name}: extracted into {status['folder']}, but snnlab data verify found problems:")
            for problem in status["problems"]:
                print(f"  - {problem}")
    return 1 if failed else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="list, generate, verify and (when asked) download data sets")
    sub = parser.add_subparsers(dest="data_command", metavar="<list|prepare|verify|fetch>", required=True)

    def add_root(p):
        p.add_argument("--root", default=None, help=f"data root (default ${DATA_ENV} or ~/.cache/snnlab)")

    p = sub.add_parser("list", help="what data sets exist, where they are looked for, which are ready")
    add_root(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_list)

    p = sub.add_parser("prepare", help="generate the embedded/emulated data sets into the cache")
    add_root(p)
    p.add_argument("names", nargs="*",
                   help="digits, nmnist-emulated, nmnist-emulated-faint (default: digits and nmnist-emulated)")
    p.add_argument("--force", action="store_true", help="regenerate even if cached")
    p.add_argument("--seed", type=int, default=0, help="noise seed of the recordings (default 0; 0..2**63-1)")
    p.add_argument("--contrast", type=float, default=None, help="DVS contrast threshold C (default: the preset's, 0.2 for nmnist-emulated)")
    p.add_argument("--limit", type=int, default=None,
                   help="only the first N >= 1 digits (a quick look; a separate cache file)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_prepare)

    p = sub.add_parser("verify", help="check real data sets in place (files, MD5 sums for CIFAR)")
    add_root(p)
    p.add_argument("names", nargs="*", help="cifar10 cifar100 dvsgesture cifar10dvs (default: all)")
    p.add_argument("--no-checksums", action="store_true", help="skip the MD5 sums (faster)")
    p.set_defaults(func=_verify)

    p = sub.add_parser("fetch", help="download real data sets (official archives, checksums verified)",
                       description="Download, verify (published md5/sha256) and extract real data sets into "
                                   "the layout the loaders and `snnlab data verify` expect. Nothing else in "
                                   "snnlab downloads.",
                       epilog=_FETCH_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_root(p)
    p.add_argument("names", nargs="*", metavar="NAME", help="cifar10 cifar100 dvsgesture cifar10dvs nmnist")
    p.add_argument("--mirror", default=None, metavar="URL",
                   help="download <URL>/<archive file name> instead of the official URL (checksums still apply)")
    p.add_argument("--force", action="store_true", help="fetch and extract again even if already extracted")
    p.add_argument("--keep-archives", action="store_true", help="keep the archives in <root>/downloads/<name>/")
    p.add_argument("--retries", type=int, default=3, help="resume attempts after a dropped connection (default 3)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds without data before a retry (default 60)")
    p.add_argument("--no-verify", action="store_true", help="skip `snnlab data verify` after extracting")
    p.add_argument("--list", action="store_true", help="print the URLs, checksums and their sources as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_fetch)
