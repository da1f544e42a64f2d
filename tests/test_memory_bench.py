"""`snnlab bench memory`: structure of the JSON and the targets, on the quick setting."""

import json

from snnlab.cli import main


def test_bench_memory_quick_reports_every_method_and_meets_the_targets(capsys, tmp_path):
    out = tmp_path / "memory.json"
    assert main(["bench", "memory", "--quick", "--output", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert json.loads(out.read_text()) == printed
    bench = printed["memory"]
    assert set(bench["results"]) == {"bptt", "sltt", "ottt_a"}
    for method, per_T in bench["results"].items():
        assert set(per_T) == {"1", "2", "16"}
        for row in per_T.values():
            assert row["saved_bytes"] > 0 and row["seconds_per_step"] > 0
    # at T=1 the three methods hold the same graph
    assert len({bench["results"][m]["1"]["saved_bytes"] for m in bench["results"]}) == 1
    ratios = bench["saved_bytes_ratio_T16_over_T2"]
    assert ratios["bptt"] >= 6 and abs(ratios["sltt"] - 1) <= 0.1 and abs(ratios["ottt_a"] - 1) <= 0.1
    assert all(t["met"] is True for t in bench["targets"].values())
