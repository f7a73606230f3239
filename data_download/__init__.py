"""Fetch and prepare the public datasets crossmatch_lite trains on.

Run ``python -m data_download --help``. Each dataset module (``acdc``, ``isic``)
only knows its own source layout; fetching, archive handling and atomic file
writing live in their own modules so that each can be tested on its own.
"""

from .errors import DataDownloadError

__all__ = ["DataDownloadError"]
