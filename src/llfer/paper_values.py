"""The published numbers llfer puts beside its own: each paper's tables as data (one place).

Keys of the papers as in ``docs/papers.md``.  Accuracies are percent, as the papers print them
([efc-lowres] prints fractions; they are given here x 100).  A scheme a paper draws only in a figure,
without printing its value, has no entry: the report says so instead of inventing one.
"""

from __future__ import annotations

#: [mirnet-fer] Table 2: (PSNR dB, SSIM) of each enhancer on FER2013 faces darkened to 10 % (PIL),
#: keyed by (llfer enhancer, "scratch" | "pretrained" | None)
MIRNET_FER_T2 = {
    ("mirnet", "scratch"): (30.03, 0.938),
    ("mirnet", "pretrained"): (29.91, 0.935),
    ("retinexnet", "scratch"): (16.75, 0.729),
    ("retinexnet", "pretrained"): (16.75, 0.729),
    ("agc", None): (13.70, 0.594),
    ("retinex", None): (12.50, 0.735),
    ("identity", None): (6.321, 0.062),   # "Darkened Images"
}

#: [mirnet-fer] Table 5: FER2013 test accuracy trained and tested on original / darkened faces
MIRNET_FER_T5 = {
    ("resnet50", "original"): 70.7,
    ("inception_resnet_v2", "original"): 68.9,
    ("resnet50", "dark"): 64.8,
    ("inception_resnet_v2", "dark"): 58.0,
}

#: [mirnet-fer] Table 6: FER2013 test accuracy, darkened faces enhanced (training and test) by an enhancer
MIRNET_FER_T6 = {
    ("resnet50", "mirnet", "scratch"): 67.6,
    ("resnet50", "mirnet", "pretrained"): 66.7,
    ("resnet50", "retinex", None): 66.0,
    ("inception_resnet_v2", "mirnet", "scratch"): 62.5,
    ("inception_resnet_v2", "mirnet", "pretrained"): 62.0,
    ("resnet50", "retinexnet", "scratch"): 62.0,
    ("resnet50", "retinexnet", "pretrained"): 62.0,
    ("inception_resnet_v2", "retinex", None): 59.0,
    ("resnet50", "agc", None): 57.1,
    ("inception_resnet_v2", "retinexnet", "scratch"): 55.6,
    ("inception_resnet_v2", "retinexnet", "pretrained"): 55.6,
    ("inception_resnet_v2", "agc", None): 41.0,
}

#: [mini-xception-fer] Table 3: mini-Xception on FER2013 per input: overall accuracy and per-class precision
MINI_XCEPTION_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
MINI_XCEPTION_T3 = {
    "clean": (70.0, (0.63, 0.71, 0.64, 0.89, 0.60, 0.79, 0.60)),
    "he": (71.0, (0.64, 0.81, 0.64, 0.90, 0.60, 0.77, 0.61)),
    "gcn": (66.0, (0.59, 0.86, 0.52, 0.87, 0.55, 0.72, 0.57)),
    "gcn_he": (61.0, (0.57, 0.64, 0.53, 0.84, 0.56, 0.69, 0.46)),
    "salt_pepper": (69.0, (0.65, 0.69, 0.59, 0.84, 0.57, 0.77, 0.62)),
}

#: [ll-fer] Table 5: total accuracy on the low-light RAF-DB and FERPlus (method -> (RAF-DB, FERPlus))
LL_FER_T5 = {
    "RAN": (82.43, 82.31), "SCN": (80.61, 79.3), "DMUE": (85.60, 83.18), "DACL": (83.7, 82.49),
    "KTN": (85.98, 83.01), "RUL": (86.18, 82.92), "EAC": (86.08, 83.10), "PACVT": (85.33, 82.55),
    "LL-FER (joint learning)": (87.48, 85.47),
}
#: [ll-fer] Fig. 10: training schemes; only the joint scheme's values are printed (= Table 5)
LL_FER_FIG10 = {"joint": (87.48, 85.47)}
LL_FER_BACKBONE = "resnet18"

#: [sobel-alexnet] Table 3: best 10-fold accuracy (JAFFE, CK+) of AlexNet (conv1-4 frozen) per input / training
SOBEL_ALEXNET_T3 = {
    "original": (83.35, 84.86),
    "sobel3": (90.10, 91.36),
    "sobel3+augment": (92.02, 93.12),
    "sobel3+augment+dropout": (92.41, 93.66),
}

#: [efc-lowres] Table 3: FER2013Plus accuracy at 20 / 15 / 10 / 8 / 5 px
EFC_SIZES = (20, 15, 10, 8, 5)
EFC_LOWRES_T3 = {
    "Lownet": (67.57, 65.89, 61.19, 58.26, 51.90),
    "APEN": (75.87, 70.81, 61.89, 58.96, 51.15),
    "SCN": (78.09, 75.10, 69.62, 65.61, 52.71),
    "DMUE": (74.23, 68.15, 59.57, 50.68, 40.99),
    "RUL": (79.16, 75.80, 68.69, 64.75, 58.23),
    "MULR": (79.57, 76.41, 71.87, 67.52, 61.39),
    "EFC net (proposed)": (80.12, 76.67, 72.33, 68.29, 61.83),
}
