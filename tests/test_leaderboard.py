"""faceedit_nb.leaderboard: intervals from the per-edit records, entries, the board and its HTML table."""
import json

import pytest
import torch

from faceedit_nb import leaderboard as LB
from faceedit_nb.data import SynthFaces
from faceedit_nb.metrics import evaluate, ground_truth_editor, identity_editor
from faceedit_nb.metrics.image import confusion_matrix, confusion_per_image
from test_metrics import TinyOracles

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def setup():
    ds = SynthFaces("test", size=32, n=32, n_identities=4, au_mode="mixed")
    tiny = TinyOracles(32)
    common = dict(batch_size=32, kid_subsets=5, amp=False)
    noisy = lambda x, s, t: (x + 0.3 * torch.randn_like(x)).clamp(-1, 1)  # noqa: E731
    tables = {}
    for protocol in ("expression", "aus", "attributes"):
        tables[protocol] = {"identity editor": evaluate(identity_editor, ds, tiny, protocol, **common),
                            "ground truth": evaluate(ground_truth_editor(ds), ds, tiny, protocol, **common),
                            "noisy": evaluate(noisy, ds, tiny, protocol, **common)}
    return ds, tables


def test_per_image_confusions_sum_to_the_batch_matrix():
    gen = torch.Generator().manual_seed(0)
    pred, target = torch.randint(5, (3, 8, 8), generator=gen), torch.randint(5, (3, 8, 8), generator=gen)
    per = confusion_per_image(pred, target, 5)
    assert per.shape == (3, 5, 5)
    assert torch.equal(per.sum(0), confusion_matrix(pred, target, 5))
    assert torch.equal(per[1], confusion_matrix(pred[1:2], target[1:2], 5))
    with pytest.raises(ValueError, match="label maps"):
        confusion_per_image(pred[0], target[0], 5)


@pytest.mark.parametrize("protocol,metrics", [
    ("expression", ("eea", "id_distance", "gt_l1", "gt_ssim", "fid_own", "gt_miou", "ed")),
    ("aus", ("ed", "id_distance", "gt_l1", "fid_own", "gt_miou")),
    ("attributes", ("attribute_accuracy", "id_distance", "gt_l1", "fid_own", "gt_miou")),
])
def test_intervals_hold_the_tables_own_figures(setup, protocol, metrics):
    _, tables = setup
    table = tables[protocol]["noisy"]
    for m in metrics:
        value, lo, hi = LB.interval(table, m, n_boot=200)
        assert value == pytest.approx(table.value(m), rel=1e-4, abs=1e-5), m
        assert lo <= value + 1e-9 and value - 1e-9 <= hi, (m, lo, value, hi)
        if m not in ("fid_own",):
            assert hi > lo, m  # 32 faces of a noisy editor: the figures vary between faces
    assert LB.interval(table, "attribute_accuracy" if protocol != "attributes" else "eea") is None


def test_an_exact_editor_has_a_zero_width_interval_where_it_is_exact(setup):
    _, tables = setup
    gt = tables["expression"]["ground truth"]
    assert LB.interval(gt, "gt_l1", n_boot=100) == pytest.approx((0.0, 0.0, 0.0), abs=1e-7)
    ident = tables["expression"]["identity editor"]
    assert LB.interval(ident, "id_distance", n_boot=100) == pytest.approx((0.0, 0.0, 0.0), abs=1e-6)
    # re-drawn faces repeat, which alone raises a FID: the interval is moved back around the estimate
    for t in (gt, tables["aus"]["ground truth"], tables["expression"]["noisy"]):
        value, lo, hi = LB.interval(t, "fid_own")
        assert 0 <= lo <= value <= hi


def test_more_faces_give_a_narrower_interval():
    tiny = TinyOracles(32)
    widths = []
    for n in (16, 64):
        ds = SynthFaces("test", size=32, n=n, n_identities=4)
        t = evaluate(lambda x, s, t: (x + 0.3 * torch.randn_like(x)).clamp(-1, 1), ds, tiny, "expression",
                     batch_size=64, kid_subsets=5, amp=False)
        _, lo, hi = LB.interval(t, "id_distance", n_boot=500)
        widths.append(hi - lo)
    assert widths[1] < widths[0]


def test_entries_board_and_ranking(setup):
    ds, tables = setup
    rows = LB.entries(tables["expression"], chapter="a", faces=LB.describe(ds), profile="smoke", minutes={"noisy": 1.5},
                      n_boot=100)
    rows += LB.entries(tables["attributes"], chapter="a", faces=LB.describe(ds), profile="smoke", n_boot=100)
    other = SynthFaces("test", size=32, n=16, n_identities=2)
    rows += [dict(r, faces=LB.describe(other), chapter="b") for r in rows if r["protocol"] == "expression"]
    results = {"a": {"leaderboard": json.dumps(rows[:10])}, "b": {"x": 1}, "c": {"leaderboard": rows[10:]}}
    got = LB.collect(results)
    assert got == rows
    tables_ = LB.board(got)
    # expression on two face sets, attributes on one: three tables, the first of each protocol the larger
    assert [(t["protocol"], t["faces"] == LB.describe(ds)) for t in tables_] == [
        ("attributes", True), ("expression", True), ("expression", False)]
    expr = tables_[1]
    assert expr["rank_by"] == "eea"
    names = [r["method"] for r in expr["rows"]]
    assert names[0] == "noisy" and expr["rows"][0]["rank"] == 1 and expr["rows"][0]["train_minutes"] == 1.5
    assert set(names[1:]) == {"identity editor", "ground truth"}
    assert all(r["rank"] is None and r["reference"] for r in expr["rows"][1:])
    eea = expr["rows"][0]["metrics"]["eea"]
    assert eea[0] == pytest.approx(tables["expression"]["noisy"].value("eea"))
    page = LB.html_table(expr)
    assert page.count("<tr>") == 1 + len(expr["rows"]) and "<script>" in page
    assert f'data-sort="{eea[0]:.6g}"' in page and "reference" in page
    # a method two chapters measured with the same figures is one row naming both; other figures: two rows
    mine = [r for r in rows if r["protocol"] == "expression" and r["chapter"] == "a"]
    other = [dict(r, chapter="z", value=r["value"] + (r["method"] == "noisy")) for r in mine]
    twice = LB.board(mine + other)[0]["rows"]
    assert [r["chapter"] for r in twice if r["method"] == "ground truth"] == ["a, z"]
    assert sorted(r["chapter"] for r in twice if r["method"] == "noisy") == ["a", "z"]


def test_ranking_follows_the_better_direction():
    def row(method, metric, value):
        return {"method": method, "protocol": "aus", "metric": metric, "value": value, "low": value, "high": value,
                "faces": "f", "chapter": "c", "profile": "cpu", "reference": False, "train_minutes": None}
    rows = [row("far", "ed", 2.0), row("near", "ed", 0.5), row("mid", "ed", 1.0), row("tied", "ed", 0.5)]
    # the AU protocol ranks by ED even when its edits also have an EEA (higher is better there)
    rows += [row(m, "eea", v) for m, v in (("far", 0.9), ("near", 0.1), ("mid", 0.2), ("tied", 0.3))]
    t = LB.board(rows)[0]
    assert t["rank_by"] == "ed" and [r["method"] for r in t["rows"]] == ["near", "tied", "mid", "far"]
    assert [r["rank"] for r in t["rows"]] == [1, 1, 3, 4]  # equal figures share a rank
    assert LB.best(t) == "aus: near (ED 0.500 [0.500, 0.500])"
    t = LB.board(rows + [dict(row("identity editor", "ed", 0.7), reference=True)])[0]
    assert LB.best(t) == "aus: near (ED 0.500 [0.500, 0.500]; doing nothing: 0.700 [0.700, 0.700])"


def test_missing_chapters_and_bad_input(setup):
    _, tables = setup
    assert LB.missing_chapters({"baselines/stargan": {"leaderboard": "[]"}}) == list(LB.SOURCES[1:])
    with pytest.raises(ValueError, match="not a list of entries"):
        LB.collect({"x": {"leaderboard": json.dumps({"a": 1})}})
    with pytest.raises(ValueError, match="unknown leaderboard metric"):
        LB.interval(tables["aus"]["noisy"], "fid")
    with pytest.raises(ValueError, match="n_boot"):
        LB.interval(tables["aus"]["noisy"], "ed", n_boot=10)
    with pytest.raises(ValueError, match="without a table"):
        LB.entries(tables["aus"], chapter="a", faces="f", profile="smoke", minutes={"StarGAN": 3.0})


def test_load_results_reads_a_file_or_says_how_to_make_one(tmp_path):
    values, said = LB.load_results(tmp_path / "none.json")
    assert values == {} and "make book" in said and "none.json" in said
    f = tmp_path / "r.json"
    f.write_text(json.dumps({"a": {"leaderboard": "[]"}, "b": {}}))
    values, said = LB.load_results(f)
    assert values == {"a": {"leaderboard": "[]"}, "b": {}} and "2 executed chapters" in said
    f.write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a results file"):
        LB.load_results(f)
