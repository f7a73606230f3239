"""Where the data really lives, and the terms it comes with.

Kept apart from the code that downloads so that a change of host or licence
text is a one-line edit that no test logic depends on.
"""

# --- ACDC -------------------------------------------------------------------

ACDC_HOST = "https://humanheart-project.creatis.insa-lyon.fr/"
# The Girder API path of the ACDC folder on the Creatis "Human Heart Project"
# site. Mirrors may keep this path or just store the zip under a short name.
ACDC_API_PATH = "database/api/v1/folder/637218e573e9f0047faa00fc/download"
ACDC_SHORT_NAME = "ACDC-training.zip"
ACDC_REGISTER = (
    "ACDC is distributed by the Creatis 'Human Heart Project' site: create an "
    "account and accept the terms at https://humanheart-project.creatis.insa-lyon.fr/ "
    "(collection page: https://humanheart-project.creatis.insa-lyon.fr/database/"
    "#collection/637218c173e9f0047faa00fb/folder/637218e573e9f0047faa00fc), "
    "then re-run, or use --mirror with a copy you are entitled to."
)
ACDC_CITATION = (
    "ACDC data: mandatory citation -- O. Bernard, A. Lalande, C. Zotti, F. Cervenansky "
    "et al., 'Deep Learning Techniques for Automatic MRI Cardiac Multi-structures "
    "Segmentation and Diagnosis: Is the Problem Solved?', IEEE Transactions on Medical "
    "Imaging 37(11):2514-2525, 2018, doi:10.1109/TMI.2018.2837502.\n"
    "Licence: CC BY-NC-SA 4.0 (non-commercial, share alike, attribution required)."
)

# The preprocessed HDF5 files as published in AiEson/CrossMatch, pinned so the
# manifest checksums stay valid even if the repository changes later.
CROSSMATCH_RAW_BASE = "https://raw.githubusercontent.com/AiEson/CrossMatch/"
CROSSMATCH_COMMIT = "59772e00c3d2bee5e3a603e596ef120eb9f88fd3"
CROSSMATCH_PREFIX = "ACDC/dataset/datasets/ACDC/"

# --- Left Atrium (2018 Atrial Segmentation Challenge) -------------------------

# The UA-MT preprocessed volumes as published in AiEson/CrossMatch at the same
# pinned commit. A mirror (and the manifest's paths) start at LA_PREFIX, i.e. a
# mirror is a copy of the repository's LA/data/ folder, which holds LA_SET_DIR.
LA_PREFIX = "LA/data/"
LA_SET_DIR = "2018LA_Seg_Training Set/"
LA_LISTS = ("train.list", "test.list",
            "train_4_label.list", "train_4_unlabel.list",
            "train_8_label.list", "train_8_unlabel.list",
            "train_16_label.list", "train_16_unlabel.list")
LA_CITATION = (
    "Left Atrium data (2018 Atrial Segmentation Challenge): cite Z. Xiong et al., 'A global "
    "benchmark of algorithms for segmenting the left atrium from late gadolinium-enhanced "
    "cardiac magnetic resonance imaging', Medical Image Analysis 67:101832, 2021, "
    "doi:10.1016/j.media.2020.101832. The preprocessed volumes (mri_norm2.h5) are the "
    "UA-MT preprocessing by L. Yu et al., 'Uncertainty-aware Self-ensembling Model "
    "for Semi-supervised 3D Left Atrium Segmentation' (UA-MT), MICCAI 2019.\n"
    "Terms: the challenge data are for research use under the 2018 Atrial Segmentation "
    "Challenge's terms (http://atriaseg2018.cardiacatlas.org/); publications must cite the "
    "challenge paper above."
)

# --- ISIC 2018 --------------------------------------------------------------

ISIC_HOST = "https://isic-challenge-data.s3.amazonaws.com/"
ISIC_PREFIX = "2018/"
ISIC_REGISTER = (
    "The ISIC 2018 challenge data is described at https://challenge.isic-archive.com/"
    "data/#2018 (register at https://challenge.isic-archive.com/ if access is "
    "restricted), or use --mirror with a copy you are entitled to."
)
ISIC_CITATION = (
    "ISIC 2018 data: cite N. Codella et al., 'Skin Lesion Analysis Toward Melanoma "
    "Detection 2018: A Challenge Hosted by the ISIC', arXiv:1902.03368, and P. Tschandl "
    "et al., 'The HAM10000 dataset', Sci. Data 5:180161 (2018).\n"
    "Licence: Task 1-2 data CC-0; the aggregate training set CC-BY-NC (see "
    "LICENSE.txt/ATTRIBUTION.txt inside each zip)."
)

# split -> (input zip, ground truth zip, approximate size of the input zip in
# bytes). No checksums are published; the size only feeds the free-space check
# when the server does not announce Content-Length.
ISIC_SPLITS = {
    "train": ("ISIC2018_Task1-2_Training_Input.zip", "ISIC2018_Task1_Training_GroundTruth.zip",
              10_400_000_000, 26_000_000),
    "val": ("ISIC2018_Task1-2_Validation_Input.zip", "ISIC2018_Task1_Validation_GroundTruth.zip",
            228_000_000, 742_000),
    "test": ("ISIC2018_Task1-2_Test_Input.zip", "ISIC2018_Task1_Test_GroundTruth.zip",
             2_200_000_000, 9_000_000),
}
