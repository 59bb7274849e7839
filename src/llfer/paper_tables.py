"""The papers' tables, side by side with this run's numbers (the report's ``papers.md``).

One markdown table per paper experiment, in the paper's shape: the paper's value beside ours and
the stage that made each of our cells.  A cell this run did not make stays empty and says which
params would fill it; no number is ever made up.  The papers' values are data in
:mod:`llfer.paper_values`.  Rows for backbones of this run that a paper did not use are added
under the paper's rows (their paper cell says so), so a CPU-sized run still fills every table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from . import paper_values as pv
from .config import Params
from .degrade import expand_variants
from .inputs import parse_spec

NOT_IN_PAPER = "not in the paper"
Spec = tuple[str, tuple[str, ...]]


@dataclass
class Runs:
    """What this run made: FER metrics per run (with ``precision_<class>``), test-time enhancement, quality, CV,
    and the joint stage's scheme comparison per ``<enhancer>-<backbone>`` pair."""

    fer: dict[str, dict[str, Any]]
    tte: dict[str, dict[str, float]]
    quality: dict[str, Any]
    cv: dict[str, dict[str, Any]]
    joint: dict[str, dict[str, Any]] = field(default_factory=dict)


def _pct(v: Optional[float]) -> str:
    return "" if v is None else f"{100 * v:.1f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


class Tables:
    """Builds the tables of one params set and its metrics."""

    def __init__(self, p: Params, runs: Runs):
        self.p, self.r = p, runs
        self.variants = expand_variants(p.degrade.model_dump())
        self.dark10 = next((v for v, st in self.variants.items() if len(st) == 1 and st[0].type == "dark_pil"
                            and abs(st[0].params["factor"] - 0.1) < 1e-9), None)
        #: our backbones beside the papers' (the grid's; [efc-lowres] adds those of fer.runs)
        self.backbones = list(p.fer.backbones)
        self.all_backbones = list(dict.fromkeys([*p.fer.backbones, *(p.split_run(r)[0] for r in p.fer.runs)]))

    # ---- finding the run of a protocol ------------------------------------------------------
    def _norm(self, spec: str) -> Spec:
        src, preps = parse_spec(spec, self.p.variant_names(), self.p.enhance.variants)
        if src == "enhanced":
            src = f"enhanced:{self.p.fer.enhanced_variant}"
        return src, tuple(preps)

    def _configured(self) -> list[tuple[str, str, str, str]]:
        """(run, stage, backbone, input) of every FER run in params."""
        p = self.p
        out = [(f"{b}-{i}", f"train_fer@{b}-{i}", b, i) for b in p.fer.backbones for i in p.fer.inputs]
        out += [(f"{b}-{i}", f"train_fer_enhanced@{b}-{i}", b, i) for b in p.fer.backbones for i in p.fer.enhanced_inputs]
        out += [(r, f"train_fer_run@{r}", *p.split_run(r)) for r in p.fer.runs]
        return out

    def find(self, backbone: str, train: Spec, test: Spec | None = None) -> tuple[str, str] | None:
        """(run, stage) of the configured run of ``backbone`` whose train / test specs are these."""
        test = train if test is None else test
        for run, stage, b, i in self._configured():
            d = self.p.input_def(i)
            if b == backbone and self._norm(d.train) == train and self._norm(d.test) == test:
                return run, stage
        return None

    def fer_cell(self, backbone: str, train: Spec, hint: str, key: str = "test_acc") -> tuple[str, str]:
        """(our value in %, the stage that made it) or ("", what would fill it)."""
        hit = self.find(backbone, train)
        if hit and hit[0] in self.r.fer and key in self.r.fer[hit[0]]:
            return _pct(self.r.fer[hit[0]][key]), hit[1]
        if hit:
            return "", f"{hit[1]} has no {key} (re-run it)"
        return "", f"not run: {hint}"

    def _input_hint(self, backbone: str, spec: Spec) -> str:
        name = "+".join([spec[0], *spec[1]]) if spec[0] != "clean" or not spec[1] else "+".join(spec[1])
        if backbone in self.p.fer.backbones:
            return f"add {name} to fer.inputs"
        return f"add {backbone}-{name} to fer.runs (or {backbone} to fer.backbones)"

    def _init(self, name: str) -> str | None:
        lc = self.p.learned.get(name)
        return None if lc is None else ("pretrained" if lc.init else "scratch")

    # ---- the tables -----------------------------------------------------------------------
    def mirnet_t2(self) -> str:
        v = self.dark10
        q = self.r.quality.get(v, {}) if v else {}
        rows = []
        for (e, kind), (psnr, ssim) in pv.MIRNET_FER_T2.items():
            label = {"identity": "Darkened images (no enhancer)"}.get(e, e) + (f" ({kind})" if kind else "")
            key = "input" if e == "identity" else e
            ok = key in q and (kind is None or self._init(e) == kind)
            if ok:
                rows.append([label, f"{psnr:.2f}", f"{ssim:.3f}", f"{q[key]['psnr']:.2f}", f"{q[key]['ssim']:.3f}", "quality"])
                continue
            if v is None or v not in self.p.enhance.variants:
                hint = "degrade.dark_pil.factors with 0.1 and that variant in enhance.variants"
            elif e not in self.p.classical and e not in self.p.learned:
                hint = f"add {e} under {'learned' if kind else 'classical'}"
            else:
                hint = (f"learned.{e}.init: <checkpoint> (fine-tuned; then this row replaces scratch)" if kind == "pretrained"
                        else f"learned.{e}.init: null")
            rows.append([label, f"{psnr:.2f}", f"{ssim:.3f}", "", "", f"not run: {hint}"])
        for e, s in q.items():
            if e not in {k for k, _ in pv.MIRNET_FER_T2} | {"input"} and "psnr" in s:
                rows.append([e, NOT_IN_PAPER, "", f"{s['psnr']:.2f}", f"{s['ssim']:.3f}", "quality"])
        return self._section("[mirnet-fer] Table 2: enhancers on faces darkened to 10 % (PIL)",
                             ["enhancer", "paper PSNR (dB)", "paper SSIM", "ours PSNR (dB)", "ours SSIM", "run"], rows,
                             f"Paper: FER2013; ours: {self.p.dataset.name}, split {self.p.quality.split!r}, variant {v}.")

    def mirnet_t5(self) -> str:
        rows = []
        dark = (self.dark10, ()) if self.dark10 else None
        for b in dict.fromkeys(["resnet50", "inception_resnet_v2", *self.backbones]):
            for cond, spec in (("original", ("clean", ())), ("dark", dark)):
                paper = pv.MIRNET_FER_T5.get((b, cond))
                if spec is None:
                    val, run = "", "not run: degrade.dark_pil.factors with 0.1"
                else:
                    val, run = self.fer_cell(b, spec, self._input_hint(b, spec))
                rows.append([f"{b} x {cond}", f"{paper:.1f}" if paper else NOT_IN_PAPER, val, run])
        return self._section("[mirnet-fer] Table 5: FER trained and tested on original / darkened faces",
                             ["method", "paper test acc (%)", "ours test acc (%)", "run"], rows,
                             f"Paper: FER2013, ImageNet-pretrained backbones; ours: {self.p.dataset.name}, from scratch "
                             f"unless fer.models.<b>.pretrained, {self.p.fer.train.epochs} epochs.")

    def mirnet_t6(self) -> str:
        rows = []
        v = self.dark10
        for b in dict.fromkeys(["resnet50", "inception_resnet_v2", *self.backbones]):
            for e, kind in dict.fromkeys((e, k) for (_, e, k) in pv.MIRNET_FER_T6):
                paper = pv.MIRNET_FER_T6.get((b, e, kind))
                label = f"{b} x {e}" + (f" ({kind})" if kind else "")
                spec = (f"enhanced:{v}", ()) if v else None
                if spec and self.p.enhancer == e and (kind is None or self._init(e) == kind):
                    val, run = self.fer_cell(b, spec, f"{b} in fer.backbones, enhanced in fer.enhanced_inputs "
                                                      f"(fer.enhanced_variant: {v})")
                else:
                    init = "" if kind is None else (", learned.%s.init: <checkpoint>" % e if kind == "pretrained" else "")
                    val, run = "", f"not run: enhancer: {e}{init} and {b}-enhanced"
                tte = self.r.tte.get(f"{b}-clean", {}).get(f"{e}:{v}") if v and (kind is None or self._init(e) == kind) else None
                rows.append([label, f"{paper:.1f}" if paper else NOT_IN_PAPER, val, run,
                             _pct(tte), "evaluate" if tte is not None else ""])
        return self._section("[mirnet-fer] Table 6: FER on darkened faces enhanced before training and test",
                             ["method", "paper test acc (%)", "ours (%)", "run", "ours, enhancer at test time only (%)",
                              "run (test time)"], rows,
                             "The last two columns: the classifier trained on clean faces, the darkened test faces "
                             "enhanced at test time only (another protocol than the paper's; stage evaluate).")

    def mini_xception_t3(self) -> str:
        rows, prec = [], []
        b = "mini_xception"
        classes = pv.MINI_XCEPTION_CLASSES
        for name, (acc, paper_prec) in pv.MINI_XCEPTION_T3.items():
            spec: Spec = ("clean", () if name == "clean" else (name,))
            val, run = self.fer_cell(b, spec, self._input_hint(b, spec))
            rows.append([name, f"{acc:.0f}", val, run])
            m = self.r.fer.get(self.find(b, spec)[0], {}) if self.find(b, spec) else {}
            if val:
                prec.append([name, *(f"{m[f'precision_{c}']:.2f}" if f"precision_{c}" in m else "" for c in classes), val])
            prec.append([f"*{name}, paper*", *(f"*{x:.2f}*" for x in paper_prec), f"*{acc:.0f}*"])
        out = self._section("[mini-xception-fer] Table 3: mini-Xception per input",
                            ["input", "paper accuracy (%)", "ours accuracy (%)", "run"], rows,
                            f"Paper: FER2013, a random 20 % test split; ours: {self.p.dataset.name}, its test split, "
                            f"{self.p.fer.train.epochs} epochs.")
        return out + "\nPer-class test precision (paper rows in italics):\n\n" + \
            _table(["input", *classes, "accuracy (%)"], prec)

    def _joint_pair(self, backbone: str) -> str | None:
        """The joint pair of ``backbone`` that made numbers ([ll-fer]'s LLENet first), when joint.variant is dark_gamma."""
        if self.p.joint.variant != "dark_gamma":
            return None
        pairs = [f"{e}-{backbone}" for e in sorted(self.p.joint.enhancers, key=lambda e: e != "llenet")]
        return next((q for q in pairs if q in self.r.joint), None)

    def ll_fer(self) -> str:
        p, rows = self.p, []
        g = "dark_gamma" if "dark_gamma" in self.variants else None
        ds = p.dataset.name
        for b in dict.fromkeys([pv.LL_FER_BACKBONE, *self.backbones, *p.joint.backbones]):
            pair = self._joint_pair(b)
            jm = self.r.joint.get(pair, {}) if pair else {}
            enh = pair.split("-", 1)[0] if pair else ""
            for scheme in ("baseline", "KFER", "IFER", "joint"):
                paper = pv.LL_FER_FIG10.get(scheme) if b == pv.LL_FER_BACKBONE else None
                pcell = [f"{paper[0]:.2f}", f"{paper[1]:.2f}"] if paper else (
                    ["figure only, no value printed"] * 2 if b == pv.LL_FER_BACKBONE else [NOT_IN_PAPER, ""])
                tt, ttrun = "", ""
                if scheme == "baseline" and g:
                    val, run = self.fer_cell(b, (g, ()), self._input_hint(b, (g, ())))
                    m = self.r.fer.get(f"{b}-clean", {})
                    if "acc_dark_gamma" in m:
                        tt, ttrun = _pct(m["acc_dark_gamma"]), f"train_fer@{b}-clean (fer.eval_on)"
                    elif "acc_baseline" in jm:
                        tt, ttrun = _pct(jm["acc_baseline"]), f"joint@{pair}"
                elif scheme == "IFER" and g:
                    if p.enhancer == "llenet":
                        val, run = self.fer_cell(b, (f"enhanced:{g}", ()), f"{b}-enhanced with fer.enhanced_variant: {g}")
                    else:
                        val, run = "", f"not run: enhancer: llenet, fer.enhanced_variant: {g} and {b}-enhanced"
                    t = self.r.tte.get(f"{b}-clean", {}).get(f"llenet:{g}")
                    if "acc_ifer" in jm:
                        tt, ttrun = _pct(jm["acc_ifer"]), f"joint@{pair} ({enh} of train_enhancer@{enh})"
                    elif t is not None:
                        tt, ttrun = _pct(t), "evaluate"
                elif scheme == "KFER":
                    val, run = "", "KinD++ is not an llfer enhancer"
                    kfer = [e for e in p.joint.classical if f"acc_{e}" in jm]
                    if kfer:
                        tt, ttrun = _pct(jm[f"acc_{kfer[0]}"]), f"joint@{pair} ({kfer[0]} in place of KinD++)"
                elif scheme == "joint":
                    val, run = "", "the joint scheme keeps the clean-trained classifier: see the test-time column"
                    if "acc_joint" in jm:
                        tt, ttrun = _pct(jm["acc_joint"]), f"joint@{pair}"
                    else:
                        ttrun = (f"not run: {b} in joint.backbones (with its {b}-clean run), llenet in joint.enhancers, "
                                 "joint.variant: dark_gamma") if g else "not run: dark_gamma in degrade"
                else:
                    val, run = "", "not run: dark_gamma in degrade"
                rows.append([f"{b} {scheme}", *pcell, val, run, tt, ttrun])
        fig10 = self._section(
            "[ll-fer] Fig. 10: training schemes on low-light faces (eq. 14)",
            ["scheme", "paper RAF-DB (%)", "paper FERPlus (%)", f"ours {ds} (%)", "run",
             "ours, trained on clean, tested low-light (%)", "run (test time)"], rows,
            "The paper's schemes all feed one FER network trained on normal light (the test-time columns here): "
            "baseline: dark_gamma faces straight in; KFER: enhanced by KinD++ (here a classical enhancer of "
            "joint.classical); IFER: by the independently trained enhancer; joint: by the enhancer trained under "
            "the frozen classifier ([ll-fer] eq. 13; plots/report/joint.md has every scheme, per class, with "
            "PSNR / SSIM). The 'ours' column instead trains and tests a classifier on the low-light or enhanced faces.")
        t5 = []
        for m, (a, b_) in pv.LL_FER_T5.items():
            if not m.startswith("LL-FER"):
                t5.append([m, f"{a:.2f}", f"{b_:.2f}", "", "not an llfer method"])
                continue
            pair = self._joint_pair(pv.LL_FER_BACKBONE)
            jm = self.r.joint.get(pair, {}) if pair else {}
            t5.append([m, f"{a:.2f}", f"{b_:.2f}", _pct(jm.get("acc_joint")),
                       f"joint@{pair}" if "acc_joint" in jm else
                       f"not run: {pv.LL_FER_BACKBONE} in joint.backbones (llenet in joint.enhancers)"])
        for r in rows:
            if r[3]:
                t5.append([f"ours: {r[0]}", "", "", r[3], r[4]])
            elif r[5] and r[0].endswith(("joint", "IFER")) and not r[0].startswith(f"{pv.LL_FER_BACKBONE} "):
                t5.append([f"ours: {r[0]}, trained on clean, tested low-light", "", "", r[5], r[6]])
        return fig10 + "\n" + self._section(
            "[ll-fer] Table 5: total accuracy on low-light RAF-DB / FERPlus",
            ["method", "paper RAF-DB (%)", "paper FERPlus (%)", f"ours {ds} (%)", "run"], t5, "")

    def sobel_alexnet_t3(self) -> str:
        p, rows = self.p, []
        cv_runs = {}
        for run, r in self.r.cv.items():
            if isinstance(r, dict) and "accuracy_mean" in r:
                cv_runs[run] = r
        aug = any(bool(x) for x in p.fer.train.augment.model_dump().values())
        for b in dict.fromkeys(["alexnet", *(p.split_run(r)[0] for r in p.cv.runs)]):
            from .build import backbone_options

            drop = float(backbone_options(p, b).get("dropout", 0) or 0) > 0
            for row, (jaffe, ck) in pv.SOBEL_ALEXNET_T3.items():
                inp = "clean" if row == "original" else "sobel3"
                want_aug, want_drop = "augment" in row, "dropout" in row
                paper = [f"{jaffe:.2f}", f"{ck:.2f}"] if b == "alexnet" else [NOT_IN_PAPER, ""]
                run = next((r for r in cv_runs if p.split_run(r) == (b, inp)), None)
                if run is None:
                    rows.append([f"{b} + {row}", *paper, "", f"not run: add {b}-{inp} to cv.runs"])
                    continue
                if inp == "sobel3" and (want_aug != aug or want_drop != drop):
                    need = [f"fer.train.augment {'on' if want_aug else 'off'}"]
                    need += [f"fer.models.{b}.dropout {'> 0' if want_drop else '0'}"]
                    rows.append([f"{b} + {row}", *paper, "", "not run: " + ", ".join(need)])
                    continue
                r = cv_runs[run]
                rows.append([f"{b} + {row}", *paper, f"{100 * r['accuracy_mean']:.1f} ± {100 * r['accuracy_std']:.1f}",
                             f"cv_fold@{run}-* ({r['folds']} folds, {r['protocol']}, {r['epochs']} epochs)"])
        return self._section("[sobel-alexnet] Table 3: 10-fold CV, original vs [gray, Gx, Gy] input",
                             ["method", "paper JAFFE (%)", "paper CK+ (%)", f"ours {p.dataset.name} (%)", "run"], rows,
                             "Ours: k-fold cross-validation mean ± std over folds (stage cv); the paper: JAFFE and CK+, "
                             "ImageNet-pretrained AlexNet with conv1-4 frozen.")

    def efc_t3(self) -> str:
        rows = []
        sizes = pv.EFC_SIZES
        lowres = {st[0].params["size"]: v for v, st in self.variants.items()
                  if len(st) == 1 and st[0].type == "lowres"}
        for m, vals in pv.EFC_LOWRES_T3.items():
            if m.startswith("EFC"):
                continue
            rows.append([m, *(f"{x:.2f}" for x in vals), "not an llfer method"])
        for b in dict.fromkeys(["efcnet", *self.all_backbones]):
            paper = pv.EFC_LOWRES_T3["EFC net (proposed)"] if b == "efcnet" else None
            rows.append([f"{b}, paper" if paper else f"{b}, paper: {NOT_IN_PAPER}", *(f"{x:.2f}" for x in paper or ()),
                         *([""] * len(sizes) if not paper else []), ""])
            cells, made = [], []
            for s in sizes:
                v = lowres.get(s)
                if v is None:
                    cells.append("")
                    made.append(f"{s} px: add {s} to degrade.lowres.sizes")
                    continue
                val, run = self.fer_cell(b, (v, ()), "")
                cells.append(val)
                made.append(run if val else f"{s} px: add {b}-{v} to fer.runs")
            filled = [m for m, c in zip(made, cells) if c]
            missing = [m for m, c in zip(made, cells) if not c]
            rows.append([f"{b}, ours", *cells, "; ".join(filled + (["not run: " + ", ".join(missing)] if missing else []))])
        return self._section("[efc-lowres] Table 3: accuracy at low resolution",
                             ["model", *(f"{s}x{s} (%)" for s in sizes), "run"], rows,
                             f"Paper: FER2013Plus, 500 epochs; ours: {self.p.dataset.name}, {self.p.fer.train.epochs} epochs, "
                             f"faces downscaled with {self.p.degrade.lowres.interpolation if self.p.degrade.lowres else 'area'} "
                             "interpolation, each network fed at the face's own size when fer.models.<b>.input_size says so.")

    @staticmethod
    def _section(title: str, header: list[str], rows: list[list[str]], note: str) -> str:
        return f"## {title}\n\n" + (f"{note}\n\n" if note else "") + _table(header, rows)

    def markdown(self) -> str:
        parts: list[Callable[[], str]] = [self.mirnet_t2, self.mirnet_t5, self.mirnet_t6, self.mini_xception_t3,
                                          self.ll_fer, self.sobel_alexnet_t3, self.efc_t3]
        head = ("# The papers' tables beside this run\n\nEach table is in its paper's shape with the paper's value "
                "beside ours and the stage that made our cell; an empty cell says which params would fill it. "
                "Paper keys: docs/papers.md.\n\n")
        return head + "\n".join(f() for f in parts)


def paper_tables(p: Params, runs: Runs) -> str:
    """The markdown of every paper table (see the module docstring)."""
    return Tables(p, runs).markdown()


def _scheme_label(scheme: str, enhancer: str) -> str:
    return {"clean": "normal light (the classifier's own test faces: upper bound)",
            "baseline": "baseline: low-light faces straight in",
            "ifer": f"IFER: {enhancer} of train_enhancer@{enhancer} -> FER",
            "joint": f"joint: {enhancer} trained under the frozen classifier ([ll-fer] eq. 13) -> FER",
            "joint_finetuned": "joint, then classifier unfrozen too (joint.finetune)"}.get(
        scheme, f"{scheme} -> FER (classical enhancer)")


def joint_markdown(p: Params, joint: dict[str, dict[str, Any]]) -> str:
    """The comparison of training schemes of every joint pair ([ll-fer] Fig. 10 and 11): test accuracy, PSNR and
    SSIM of each scheme, per-class accuracy, and the joint training's own numbers (the report's ``joint.md``)."""
    out = [f"# [ll-fer] training schemes on {p.dataset.name}, test split darkened by {p.joint.variant}\n\n"
           "Every scheme feeds the same classifier, trained on normal-light faces (train_fer@<backbone>-clean) and "
           "never changed (except the 'classifier unfrozen' row); PSNR / SSIM of the faces it sees against the "
           "normal-light faces (stage joint@<enhancer>-<backbone>, metrics/fer/joint/<enhancer>-<backbone>.json).\n"]
    for pair, m in joint.items():
        enh = pair.split("-", 1)[0]
        schemes = [k[4:] for k in m if k.startswith("acc_")]
        rows = [[_scheme_label(s, enh), _pct(m[f"acc_{s}"]),
                 f"{m[f'psnr_{s}']:.2f}" if f"psnr_{s}" in m else "", f"{m[f'ssim_{s}']:.3f}" if f"ssim_{s}" in m else ""]
                for s in schemes]
        classes = list(dict.fromkeys(k.split("_", 3)[-1] for k in m if k.startswith("class_acc_clean_")))
        per = [[c, *(_pct(m.get(f"class_acc_{s}_{c}")) for s in schemes)] for c in classes]
        out.append(f"\n## joint@{pair}\n\n" + _table(["scheme", "test accuracy (%)", "PSNR (dB)", "SSIM"], rows))
        out.append("\nPer-class accuracy (%) ([ll-fer] Fig. 11):\n\n" + _table(["class", *schemes], per))
        out.append(f"\nJoint training: {m['steps_run']} steps on {m['train_triples']} triples, L_joint "
                   f"{m['loss_first']:.4f} -> {m['loss_last']:.4f}; cascade accuracy on {m['val_images']} val faces "
                   f"{_pct(m['val_acc_ifer'])} % (IFER) -> {_pct(m['val_acc_joint'])} % (joint, best step "
                   f"{m['best_step']}); PSNR {m['psnr_ifer']:.2f} -> {m['psnr_joint']:.2f} dB, SSIM "
                   f"{m['ssim_ifer']:.3f} -> {m['ssim_joint']:.3f} after joint training.\n")
    return "".join(out)
