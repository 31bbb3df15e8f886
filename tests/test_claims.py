"""faceedit_nb.claims: intervals, paired tests and the four verdicts (each outcome reached)."""
import json
import math

import numpy as np
import pytest
import torch

from faceedit_nb import claims as C
from faceedit_nb.metrics import EvalTable, frechet_distance


def _diff(est, se):
    return C.Difference(est, est - C.Z95 * se, est + C.Z95 * se, se, 100, "test")


# --- verdicts: every outcome is reachable, in both directions ---------------------------------------------
def test_each_of_the_four_verdicts_is_reached():
    assert C.verdict(_diff(0.10, 0.02)) == "reproduced"
    assert C.verdict(_diff(-0.10, 0.02)) == "contradicted"
    assert C.verdict(_diff(0.01, 0.02)) == "inconclusive"
    assert C.verdict(_diff(0.10, 0.02), testable=False) == "not testable here"
    assert C.verdict(None) == "not testable here"
    assert C.verdict(_diff(float("nan"), 0.02)) == "not testable here"


def test_lower_is_better_flips_the_sides():
    assert C.verdict(_diff(-3.0, 1.0), better="lower") == "reproduced"
    assert C.verdict(_diff(3.0, 1.0), better="lower") == "contradicted"
    assert C.verdict(_diff(0.5, 1.0), better="lower") == "inconclusive"
    with pytest.raises(ValueError, match="better"):
        C.verdict(_diff(1, 1), better="more")


def test_the_interval_boundary_decides_not_the_sign_alone():
    # estimate positive, interval just reaching 0: inconclusive; just above 0: reproduced
    assert C.verdict(C.Difference(0.1, 0.0, 0.2, 0.05, 10, "t")) == "inconclusive"
    assert C.verdict(C.Difference(0.1, 1e-9, 0.2, 0.05, 10, "t")) == "reproduced"


# --- the differences -------------------------------------------------------------------------------------
def test_rate_difference_is_the_two_proportion_interval():
    d = C.rate_difference(0.9, 1000, 0.8, 1000)
    se = math.sqrt(0.09 / 1000 + 0.16 / 1000)
    assert d.estimate == pytest.approx(0.1) and d.se == pytest.approx(se)
    assert d.low == pytest.approx(0.1 - 1.959964 * se) and d.detectable == pytest.approx(2.801585 * se)
    with pytest.raises(ValueError, match="at least one"):
        C.rate_difference(0.5, 0, 0.5, 10)
    with pytest.raises(ValueError, match="rate in"):
        C.rate_difference(1.5, 10, 0.5, 10)


def test_mcnemar_uses_only_discordant_edits_and_beats_the_unpaired_interval():
    g = torch.Generator().manual_seed(0)
    both = torch.rand(2000, generator=g) < 0.5
    a = both.clone()
    b = both.clone()
    flip = torch.randperm(2000, generator=g)[:120]
    a[flip[:90]] = True   # A right where B is wrong on 90 edits ...
    b[flip[:90]] = False
    a[flip[90:]] = False  # ... and B right where A is wrong on 30
    b[flip[90:]] = True
    d = C.paired_rate_difference(a, b)
    assert d.estimate == pytest.approx(60 / 2000)
    assert d.se == pytest.approx(math.sqrt(121 - 60 ** 2 / 2002) / 2002)  # Agresti-Min: half an edit per cell
    assert C.verdict(d) == "reproduced" and "90 + 30 discordant" in d.test
    unpaired = C.rate_difference(float(a.float().mean()), 2000, float(b.float().mean()), 2000)
    assert d.se < unpaired.se  # pairing removes the faces' shared difficulty
    same = C.paired_rate_difference(a, a)  # no edit disagrees: an interval all the same, narrow
    assert same.estimate == 0 and C.verdict(same) == "inconclusive" and 0 < same.detectable < 0.002
    with pytest.raises(ValueError, match="same edits"):
        C.paired_rate_difference(a, b[:-1])


def test_paired_bootstrap_keeps_faces_together_and_covers_the_truth():
    g = torch.Generator().manual_seed(1)
    face = torch.arange(200).repeat_interleave(8)
    base = torch.randn(200, generator=g)[face]          # a per-face effect shared by both models
    a = base + 0.05 + 0.1 * torch.randn(1600, generator=g)
    b = base + 0.1 * torch.randn(1600, generator=g)
    d = C.paired_bootstrap(a, b, clusters=face, n_boot=400)
    assert abs(d.estimate - 0.05) < 3 * d.se and d.low > 0 and C.verdict(d) == "reproduced"
    assert d.se == pytest.approx(float((a - b).std()) / math.sqrt(1600), rel=0.3)
    with pytest.raises(ValueError, match="n_boot"):
        C.paired_bootstrap(a, b, n_boot=10)
    with pytest.raises(ValueError, match="one face per value"):
        C.paired_bootstrap(a, b, clusters=face[:10])


def _table(hits, face, own, real_own, ids, protocol="expression"):
    t = EvalTable()
    t.add("overall", "eea", float(hits.float().mean()), len(hits))
    t.add("overall", "id_distance", float(ids.mean()), len(ids))
    t.meta = {"protocol": protocol}
    t.edits = {"face": face, "eea_hit": hits, "own": own, "real_own": real_own, "id_distance": ids}
    return t


def test_eea_difference_pairs_tables_of_the_same_faces_and_falls_back_otherwise():
    g = torch.Generator().manual_seed(2)
    face = torch.arange(50).repeat(8)
    real = torch.randn(50, 6, generator=g)
    a = _table(torch.rand(400, generator=g) < 0.7, face, torch.randn(400, 6, generator=g), real, torch.rand(400))
    b = _table(torch.rand(400, generator=g) < 0.4, face, torch.randn(400, 6, generator=g), real, torch.rand(400))
    assert C.eea_difference(a, b).test.startswith("McNemar")
    other = _table(b.edits["eea_hit"], face.flip(0), b.edits["own"], real, b.edits["id_distance"])
    assert C.eea_difference(a, other).test.startswith("two proportions")
    assert C.metric_difference(a, b, "id_distance").test.startswith("paired bootstrap over 50 faces")
    with pytest.raises(ValueError, match="same faces"):
        C.metric_difference(a, other, "id_distance")


def test_fid_difference_estimate_is_the_harness_fid_and_detects_a_shift():
    g = torch.Generator().manual_seed(3)
    face = torch.arange(80).repeat(4)
    real = torch.randn(80, 5, generator=g, dtype=torch.float64)
    close = torch.randn(320, 5, generator=g, dtype=torch.float64)
    far = torch.randn(320, 5, generator=g, dtype=torch.float64) + 1.0
    hits = torch.ones(320, dtype=torch.bool)
    ta, tb = _table(hits, face, far, real, torch.rand(320)), _table(hits, face, close, real, torch.rand(320))
    d = C.fid_difference(ta, tb, n_boot=150)
    want = frechet_distance(real, far) - frechet_distance(real, close)
    assert d.estimate == pytest.approx(want, rel=1e-4, abs=1e-6)
    assert C.verdict(d, better="lower") == "contradicted" and C.verdict(d, better="higher") == "reproduced"


def test_combine_seeds_includes_the_spread_between_seeds():
    runs = [_diff(0.10, 0.01), _diff(-0.05, 0.01), _diff(0.02, 0.01)]
    d = C.combine_seeds(runs)
    spread = np.var([0.10, -0.05, 0.02], ddof=1)
    assert d.estimate == pytest.approx(0.07 / 3) and d.se == pytest.approx(math.sqrt((spread + 1e-4) / 3))
    assert C.verdict(d) == "inconclusive"  # each run alone looks decisive, the seeds disagree
    assert C.combine_seeds(runs[:1]) is runs[0]


# --- claims and their table ---------------------------------------------------------------------------
def test_inconclusive_claims_state_the_detectable_effect_and_the_papers_effect():
    c = C.Claim("ours above StarGAN", "+5.1 points", _diff(0.004, 0.01), scale=100, unit=" pts", paper_effect=5.1)
    assert c.verdict == "inconclusive"
    assert "5.1 pts is above the detectable 2.80 pts" in c.verdict_text()
    small = C.Claim("x", "+1", _diff(0.004, 0.01), scale=100, unit=" pts", paper_effect=1.0)
    assert "is below the detectable" in small.verdict_text()
    with pytest.raises(ValueError, match="say why"):
        C.Claim("x", "y", testable=False)
    nt = C.Claim("λ_global matters", "95.3", testable=False, reason="the global generator is fixed")
    assert nt.verdict_text() == "not testable here: the global generator is fixed"
    # a claim marked testable whose run gave no (finite) difference says so instead of an empty reason
    assert C.Claim("x", "+1").verdict_text().startswith("not testable here: no difference was measured")
    assert "not finite" in C.Claim("x", "+1", _diff(float("nan"), 0.01)).verdict_text()


def test_a_claim_between_editors_that_do_not_edit_is_not_read_as_evidence():
    # ED per edit (lower is better): the identity editor 1.6; "worse" 2.1 and "bad" 1.9 are both further from the
    # targets than doing nothing, so "bad beats worse" is measured (and shown) but not a verdict either way;
    # with an editor that does edit (1.0) the same claim gets its verdict
    g = torch.Generator().manual_seed(4)
    face = torch.arange(50).repeat(8)
    real = torch.randn(50, 6, generator=g)

    def ed_table(mean):
        t = _table(torch.rand(400, generator=g) < 0.5, face, torch.randn(400, 6, generator=g), real, torch.rand(400))
        t.edits["ed"] = mean + 0.1 * torch.randn(400, generator=g)
        t.add("overall", "ed", float(t.edits["ed"].mean()), 400)
        return t

    tables = {"nothing": ed_table(1.6), "worse": ed_table(2.1), "bad": ed_table(1.9), "good": ed_table(1.0)}
    premise = C.edits_better_than_nothing(tables, ["bad", "worse"], tables["nothing"], "ed")
    assert not premise.holds and premise.evidence.startswith("ed: bad 1.8") and "worse 2.0" in premise.evidence
    assert premise.evidence.endswith("to doing nothing; doing nothing 1.6")
    claim = C.Claim("bad has a lower ED than worse", "0.275 vs 0.313",
                    C.metric_difference(tables["bad"], tables["worse"], "ed"), better="lower", premises=[premise])
    assert C.verdict(claim.difference, better="lower") == "reproduced"  # the difference alone would say so
    assert claim.verdict == "not testable here"
    assert claim.verdict_text().startswith('not testable here: the premise "bad and worse edit better than doing '
                                           'nothing" fails (ed: bad 1.8')
    record = json.loads(json.dumps(claim.record()))  # the records go to the claims page as JSON
    assert record["ours"] != "–"  # the measured difference stays in the table
    assert record["premises"] == [{"statement": premise.statement, "holds": False, "evidence": premise.evidence}]
    holds = C.edits_better_than_nothing(tables, ["good"], tables["nothing"], "ed")
    assert holds.holds
    good = C.Claim("good has a lower ED than worse", "–", C.metric_difference(tables["good"], tables["worse"], "ed"),
                   better="lower", premises=[holds])
    assert good.verdict == "reproduced"
    # a hit rate through the paired McNemar test: doing nothing's hits plus 2 more of 400 edits is not
    # (measurably) an edit; plus 40 more is
    for extra, edits in ((2, False), (40, True)):
        hits = tables["nothing"].edits["eea_hit"].clone()
        hits[(~hits).nonzero()[:extra, 0]] = True
        tables["rate"] = _table(hits, face, tables["nothing"].edits["own"], real, torch.rand(400))
        rate = C.edits_better_than_nothing(tables, ["rate"], tables["nothing"], "eea", better="higher",
                                           difference=C.eea_difference)
        assert rate.holds is edits and rate.statement == "rate edits better than doing nothing"


def test_claims_table_has_one_row_per_claim_and_json_for_the_overview():
    claims = [C.Claim("a", "+1", _diff(0.1, 0.01), scale=100),
              C.Claim("b", "-1", _diff(0.1, 0.01), better="lower", scale=100),
              C.Claim("c", "–", testable=False, reason="no data")]
    md = C.claims_table(claims).data
    lines = md.splitlines()
    assert lines[0].startswith("| claim | paper's figure | ours (95 % interval) | detectable effect | verdict")
    assert len(lines) == 2 + 3 and "reproduced" in lines[2] and "contradicted" in lines[3]
    records = json.loads(json.dumps(C.claims_records(claims)))
    assert [r["verdict"] for r in records] == ["reproduced", "contradicted", "not testable here"]
    assert set(records[0]) >= {"claim", "paper", "ours", "detectable", "verdict"}
