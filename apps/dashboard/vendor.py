"""The browser libraries the dashboard serves from static/vendor/, pinned, with their licenses.

`manage.py vendor_refresh` downloads each package's tarball from the npm registry, checks it
against the registry's published integrity hash, copies the listed files and the license into
static/vendor/<dir>/, and writes static/vendor/manifest.json (name, version, license, tarball,
integrity and a sha256 per file). `--check` verifies the committed files against the manifest
without the network (the test suite runs it). Nothing is ever loaded from a CDN.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

REGISTRY = "https://registry.npmjs.org"


@dataclass(frozen=True)
class VendoredPackage:
    name: str  # the npm package
    version: str
    directory: str  # under static/vendor/
    files: tuple[str, ...]  # paths inside the tarball's package/ folder
    why: str


# htmx stays on the 2.0 line: 4.x changes attribute inheritance and event names, and 2.0 is
# still maintained. uPlot rather than Chart.js: one usage chart does not justify 200 KB.
PACKAGES: tuple[VendoredPackage, ...] = (
    VendoredPackage("htmx.org", "2.0.11", "htmx", ("dist/htmx.min.js",), "partial page updates"),
    VendoredPackage("marked", "18.2.1", "marked", ("lib/marked.esm.js",), "Markdown to HTML"),
    VendoredPackage("dompurify", "3.5.0", "dompurify", ("dist/purify.es.mjs",), "sanitizes rendered HTML"),
    VendoredPackage(
        "@highlightjs/cdn-assets",
        "11.12.0",
        "highlight",
        ("es/highlight.min.js", "styles/github.min.css", "styles/github-dark.min.css"),
        "code highlighting",
    ),
    VendoredPackage("uplot", "1.6.32", "uplot", ("dist/uPlot.esm.js", "dist/uPlot.min.css"), "usage charts"),
)

LICENSE_NAMES = ("LICENSE", "LICENSE.md", "LICENSE.txt", "license", "LICENSE-MIT")


def vendor_root() -> Path:
    return Path(settings.BASE_DIR) / "static" / "vendor"


def manifest_path() -> Path:
    return vendor_root() / "manifest.json"


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_integrity(data: bytes, integrity: str) -> None:
    """npm's `dist.integrity` is a Subresource Integrity string: `sha512-<base64>`."""
    algorithm, _, expected = integrity.partition("-")
    digest = base64.b64encode(hashlib.new(algorithm, data).digest()).decode()
    if digest != expected:
        raise ValueError(f"integrity mismatch: expected {integrity}, got {algorithm}-{digest}")


def extract(package: VendoredPackage, tarball: bytes, into: Path) -> dict[str, str]:
    """Copy the package's listed files and its license into `into`; answer file -> sha256."""
    into.mkdir(parents=True, exist_ok=True)
    written: dict[str, str] = {}
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        members = {member.name.removeprefix("package/"): member for member in archive.getmembers() if member.isfile()}
        wanted = [*package.files, next((name for name in LICENSE_NAMES if name in members), "")]
        for inner in filter(None, wanted):
            member = members.get(inner)
            if member is None:
                raise ValueError(f"{package.name}@{package.version} has no {inner}")
            content = strip_source_map_comment(archive.extractfile(member).read())
            target = into / Path(inner).name
            target.write_bytes(content)
            written[target.name] = hashlib.sha256(content).hexdigest()
    return written


_SOURCE_MAP_COMMENT = re.compile(rb"^\s*(//# sourceMappingURL=\S+|/\*# sourceMappingURL=\S+ \*/)\s*$", re.MULTILINE)


def strip_source_map_comment(content: bytes) -> bytes:
    """The maps are not vendored, and collectstatic's manifest step fails on a reference to a
    file that is not there."""
    return _SOURCE_MAP_COMMENT.sub(b"", content)


def verify_manifest() -> list[str]:
    """Problems between static/vendor/ and its manifest (empty when they agree)."""
    path = manifest_path()
    if not path.exists():
        return [f"{path} is missing; run `manage.py vendor_refresh`"]
    manifest = json.loads(path.read_text())
    problems = []
    pinned = {(p.name, p.version) for p in PACKAGES}
    listed = {(entry["name"], entry["version"]) for entry in manifest["packages"]}
    if pinned != listed:
        problems.append(f"manifest lists {sorted(listed)}, vendor.py pins {sorted(pinned)}")
    for entry in manifest["packages"]:
        for name, digest in entry["files"].items():
            file = vendor_root() / entry["directory"] / name
            if not file.exists():
                problems.append(f"{file} is missing")
            elif sha256_of(file) != digest:
                problems.append(f"{file} differs from the manifest (edited by hand?)")
    return problems
