"""The papers' tables in the report: the paper's value beside ours, the stage that made each of our cells,
an empty cell saying which params would fill it, never a made-up number."""

from __future__ import annotations

import re

from llfer import paper_values as pv
from llfer.config import load_params
from llfer.paper_tables import Runs, paper_tables
from llfer.pipeline.report import cv_vs_holdout

from conftest import REPO


def _all_tables(md: str) -> dict[str, list[list[list[str]]]]:
    """Section title -> its tables, each a list of rows (cells), header first."""
    out: dict[str, list[list[list[str]]]] = {}
    title, lines = None, md.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("## "):
            title = line[3:]
            out[title] = []
        elif title and line.startswith("|") and not line.startswith("|---"):
            if i + 1 < len(lines) and lines[i + 1].startswith("|---"):
                out[title].append([])
            out[title][-1].append([c.strip() for c in line.strip("|").split("|")])
    return out


def _tables(md: str) -> dict[str, list[list[str]]]:
    """Section title -> the rows of its first table, header first."""
    return {k: v[0] for k, v in _all_tables(md).items()}


def _runs() -> Runs:
    fer = {"mini_xception-clean": {"test_acc": 0.8123, "test_macro_f1": 0.8, "acc_dark_gamma": 0.2468,
                                   "train_images": 2453, "epochs_run": 12},
           "mini_xception-he": {"test_acc": 0.7777, "test_macro_f1": 0.7, "precision_angry": 0.5, "precision_happy": 0.9},
           "efcnet-lowres_10": {"test_acc": 0.5432, "test_macro_f1": 0.5}}
    tte = {"mini_xception-clean": {"agc:dark_pil": 0.6543, "retinex:dark_pil": 0.3456}}
    quality = {"dark_pil": {"input": {"psnr": 7.99, "ssim": 0.082}, "agc": {"psnr": 17.2, "ssim": 0.775},
                            "he": {"psnr": 30.1, "ssim": 0.9}}}
    cv = {"mini_xception-sobel3": {"accuracy_mean": 0.61, "accuracy_std": 0.05, "folds": 10, "protocol": "subject",
                                   "epochs": 4}}
    return Runs(fer=fer, tte=tte, quality=quality, cv=cv)


def test_every_paper_table_in_its_shape_with_our_cells_and_their_runs():
    p = load_params(REPO / "params.yaml")
    t = _tables(paper_tables(p, _runs()))
    assert len(t) == 8, list(t)
    t2 = t["[mirnet-fer] Table 2: enhancers on faces darkened to 10 % (PIL)"]
    assert t2[0] == ["enhancer", "paper PSNR (dB)", "paper SSIM", "ours PSNR (dB)", "ours SSIM", "run"]
    assert ["agc", "13.70", "0.594", "17.20", "0.775", "quality"] in t2
    assert ["he", "not in the paper", "", "30.10", "0.900", "quality"] in t2
    mx = t["[mini-xception-fer] Table 3: mini-Xception per input"]
    assert ["he", "71", "77.8", "train_fer@mini_xception-he"] in mx
    assert ["clean", "70", "81.2", "train_fer@mini_xception-clean"] in mx
    gcn = next(r for r in mx if r[0] == "gcn")
    assert gcn[2] == "" and gcn[3] == "train_fer@mini_xception-gcn has no test_acc (re-run it)"
    prec = _all_tables(paper_tables(p, _runs()))["[mini-xception-fer] Table 3: mini-Xception per input"][1]
    assert ["he", "0.50", "", "", "0.90", "", "", "", "77.8"] in prec and ["*he, paper*", "*0.64*", "*0.81*", "*0.64*",
                                                                         "*0.90*", "*0.60*", "*0.77*", "*0.61*", "*71*"] in prec
    t6 = t["[mirnet-fer] Table 6: FER on darkened faces enhanced before training and test"]
    agc = next(r for r in t6 if r[0] == "mini_xception x agc")
    assert agc[2] == "" and agc[3].startswith("not run: enhancer: agc") and agc[4:] == ["65.4", "evaluate"]
    assert next(r for r in t6 if r[0] == "resnet50 x mirnet (scratch)")[1] == "67.6"
    efc = t["[efc-lowres] Table 3: accuracy at low resolution"]
    ours = next(r for r in efc if r[0] == "efcnet, ours")
    assert ours[1:6] == ["", "", "54.3", "", ""] and ours[6].startswith("train_fer_run@efcnet-lowres_10; not run:")
    sob = t["[sobel-alexnet] Table 3: 10-fold CV, original vs [gray, Gx, Gy] input"]
    assert ["mini_xception + sobel3+augment", "not in the paper", "", "61.0 ± 5.0",
            "cv_fold@mini_xception-sobel3-* (10 folds, subject, 4 epochs)"] in sob
    fig10 = t["[ll-fer] Fig. 10: training schemes on low-light faces (eq. 14)"]
    joint = next(r for r in fig10 if r[0] == "resnet18 joint")
    assert joint[1:3] == ["87.48", "85.47"] and joint[5] == "" and joint[6].startswith("not run: resnet18 in joint.backbones")
    base = next(r for r in fig10 if r[0] == "mini_xception baseline")
    assert base[5:] == ["24.7", "train_fer@mini_xception-clean (fer.eval_on)"]
    assert next(r for r in fig10 if r[0] == "resnet18 baseline")[1] == "figure only, no value printed"


def test_no_number_of_ours_is_made_up():
    """Every number in an 'ours' column is one of the metrics given (x 100, rounded) or a quality score."""
    p = load_params(REPO / "params.yaml")
    runs = _runs()
    allowed = {f"{100 * v:.1f}" for m in runs.fer.values() for v in m.values() if isinstance(v, float)}
    allowed |= {f"{100 * v:.1f}" for m in runs.tte.values() for v in m.values()}
    allowed |= {"61.0 ± 5.0", "17.20", "0.775", "30.10", "0.900", "7.99", "0.082"}
    for title, rows in _tables(paper_tables(p, runs)).items():
        header = rows[0]
        for r in rows[1:]:
            for h, c in zip(header, r):
                if h.startswith("ours") and c:
                    assert c in allowed, (title, h, c)
                if h == "run" and c and not c.startswith(("train_fer", "cv_fold", "quality", "evaluate")):
                    assert not re.search(r"\d+\.\d", c), (title, c)


def test_paper_values_are_the_papers_headline_numbers():
    assert pv.MIRNET_FER_T2[("mirnet", "scratch")] == (30.03, 0.938)
    assert pv.MIRNET_FER_T5[("resnet50", "original")] == 70.7 and pv.MIRNET_FER_T6[("resnet50", "mirnet", "scratch")] == 67.6
    assert [v[0] for v in pv.MINI_XCEPTION_T3.values()] == [70.0, 71.0, 66.0, 61.0, 69.0]
    assert pv.LL_FER_T5["LL-FER (joint learning)"] == (87.48, 85.47) == pv.LL_FER_FIG10["joint"]
    assert pv.SOBEL_ALEXNET_T3["sobel3+augment+dropout"] == (92.41, 93.66)
    assert pv.EFC_LOWRES_T3["EFC net (proposed)"] == (80.12, 76.67, 72.33, 68.29, 61.83)
    assert all(len(v) == len(pv.EFC_SIZES) for v in pv.EFC_LOWRES_T3.values())


def test_cv_and_holdout_differences_are_explained_in_one_line():
    p = load_params(REPO / "params.yaml")
    c = {"accuracy_mean": 0.40, "accuracy_std": 0.05, "folds": 10, "protocol": "subject", "images": 700,
         "epochs": 4, "train_images_per_fold": 630}
    line = cv_vs_holdout("mini_xception-clean", c, {"test_acc": 0.86, "train_images": 2453, "epochs_run": 12}, p)
    assert "\n" not in line and "46.0 points below" in line and "beyond two standard deviations" in line
    assert "630 vs 2453 training images" in line and "4 vs 12 epochs" in line and "subjects kept apart" in line
    same = cv_vs_holdout("r", {**c, "accuracy_mean": 0.85}, {"test_acc": 0.86, "train_images": 630, "epochs_run": 4}, p)
    assert "within two standard deviations" in same and "epochs" not in same.split(" - ")[1]
