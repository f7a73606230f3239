"""Where the tests find real sample data: public ACDC and ISIC files in their official
layouts, in the folder that $CROSSMATCH_LITE_SAMPLE_DATA names (`acdc/ACDC-training.zip`,
`isic2018/...` with 60 pairs, `isic2018-2000/...` with 2,000, `fives-19/` with 19 FIVES
photographs in the release's layout). Tests that need them skip when
it is unset or the files are absent."""
import os
from pathlib import Path

SAMPLE_DATA = Path(os.environ.get("CROSSMATCH_LITE_SAMPLE_DATA") or "sample-data-not-set")
