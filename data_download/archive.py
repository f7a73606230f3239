"""Safe reading and extraction of zip archives.

Archives come from the network, so no member is trusted: every name is checked
before a single byte is written, and extraction happens in a temporary folder
that is renamed into place only when every member came out with a good CRC.
"""

from __future__ import annotations

import shutil
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator

from tqdm import tqdm

from .errors import DataDownloadError
from .fsutil import atomic_path, check_free_space

CHUNK = 1 << 20
# What a damaged member raises while it is read: a CRC mismatch (BadZipFile), a cut-off
# stream (EOFError), or a deflate stream that does not decode (zlib.error).
MEMBER_ERRORS = (zipfile.BadZipFile, EOFError, zlib.error)


class MemberError(DataDownloadError):
    """One member of an otherwise readable archive is damaged."""


def open_zip(path: Path, register_hint: str | None = None) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        if _is_html(path):
            raise DataDownloadError(
                f"{path} is an HTML page (probably a login, consent or error page), not a zip. "
                f"Delete it and re-run. " + (register_hint or "")
            ) from None
        raise DataDownloadError(
            f"corrupt or unreadable archive {path}: {e}. Delete it and re-run to download it again."
        ) from None


def _is_html(path: Path) -> bool:
    from .http_fetch import looks_like_html

    try:
        return looks_like_html(path)
    except OSError:
        return False


def unsafe_reason(info: zipfile.ZipInfo) -> str | None:
    """Why this member must not be extracted, or None if it is fine."""
    name = info.filename
    # Zip names should use '/', but archives made on Windows sometimes use '\'.
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    if ".." in parts:
        return "path escapes the destination ('..')"
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return "symbolic link"
    # Many writers store permission bits only (no file type): that is a plain file.
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
        return "special file"
    return None


def checked_members(zf: zipfile.ZipFile, archive: Path) -> list[zipfile.ZipInfo]:
    bad = [(i.filename, r) for i in zf.infolist() if (r := unsafe_reason(i))]
    if bad:
        shown = "; ".join(f"{n!r}: {r}" for n, r in bad[:5])
        raise DataDownloadError(
            f"refusing to extract {archive}: {len(bad)} unsafe member(s) ({shown}). "
            f"The archive is not what the source publishes; delete it and re-run."
        )
    return zf.infolist()


def safe_extract(archive: Path, dest_dir: Path, *, keep: Callable[[str], bool] | None = None,
                 progress: bool = True) -> Path:
    """Extract ``archive`` into ``dest_dir``, which appears only when complete."""
    archive, dest_dir = Path(archive), Path(dest_dir)
    with open_zip(archive) as zf:
        members = [m for m in checked_members(zf, archive) if keep is None or keep(m.filename)]
        need = sum(m.file_size for m in members)
        check_free_space(dest_dir.parent, need, f"extracting {archive.name}")
        if dest_dir.exists():
            shutil.rmtree(dest_dir)
        try:
            with atomic_path(dest_dir) as tmp, tqdm(
                total=need, unit="B", unit_scale=True, unit_divisor=1024,
                desc=f"extract {archive.name}", disable=not progress, leave=False,
            ) as bar:
                tmp.mkdir()
                for m in members:
                    target = tmp.joinpath(*PurePosixPath(m.filename.replace("\\", "/")).parts)
                    if m.is_dir():
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    # zf.open checks the CRC when the member is fully read and
                    # raises BadZipFile on mismatch.
                    with zf.open(m) as src, open(target, "wb") as out:
                        for block in iter(lambda: src.read(CHUNK), b""):
                            out.write(block)
                            bar.update(len(block))
        except (*MEMBER_ERRORS, zipfile.LargeZipFile, NotImplementedError) as e:
            raise DataDownloadError(
                f"corrupt archive {archive}: {e}. Nothing was extracted; delete the archive "
                f"and re-run to download it again."
            ) from None
    return dest_dir


def read_member(zf: zipfile.ZipFile, archive: Path, name: str) -> bytes:
    try:
        return zf.read(name)
    except MEMBER_ERRORS as e:
        raise MemberError(
            f"member {name} of {archive} is damaged ({type(e).__name__}: {e}); delete the archive "
            f"and re-run to download it again."
        ) from None


def iter_members(zf: zipfile.ZipFile, archive: Path, names: list[str]) -> Iterator[tuple[str, bytes]]:
    """Read the given members one at a time without extracting the archive.

    Memory stays bounded by the largest single member (an image), not the archive.
    A damaged member raises MemberError naming it.
    """
    for name in names:
        yield name, read_member(zf, archive, name)
