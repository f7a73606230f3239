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
