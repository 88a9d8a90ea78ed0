from __future__ import annotations

import json
import shutil

import httpx
from django.core.management.base import BaseCommand, CommandError

from apps.dashboard import vendor


class Command(BaseCommand):
    help = "Download the dashboard's browser libraries from npm into static/vendor/ (apps/dashboard/vendor.py)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--check", action="store_true", help="Only verify static/vendor/ against its manifest (offline)."
        )

    def handle(self, *args, check: bool = False, **options):
        if check:
            problems = vendor.verify_manifest()
            for problem in problems:
                self.stderr.write(problem)
            if problems:
                raise CommandError(f"{len(problems)} problem(s) in static/vendor/")
            self.stdout.write(self.style.SUCCESS("static/vendor/ matches its manifest"))
            return
        entries = []
        with httpx.Client(timeout=60, follow_redirects=True) as client:
            for index, package in enumerate(vendor.PACKAGES, start=1):
                self.stdout.write(f"[{index}/{len(vendor.PACKAGES)}] {package.name}@{package.version}")
                try:
                    meta = client.get(f"{vendor.REGISTRY}/{package.name}/{package.version}").raise_for_status().json()
                    tarball = client.get(meta["dist"]["tarball"]).raise_for_status().content
                except httpx.HTTPError as exc:
                    raise CommandError(f"could not download {package.name}@{package.version}: {exc}") from exc
                vendor.check_integrity(tarball, meta["dist"]["integrity"])
                target = vendor.vendor_root() / package.directory
                shutil.rmtree(target, ignore_errors=True)
                files = vendor.extract(package, tarball, target)
                entries.append(
                    {
                        "name": package.name,
                        "version": package.version,
                        "license": meta.get("license", "see license file"),
                        "directory": package.directory,
                        "why": package.why,
                        "tarball": meta["dist"]["tarball"],
                        "integrity": meta["dist"]["integrity"],
                        "files": files,
                    }
                )
        manifest = {"generated_by": "manage.py vendor_refresh", "packages": entries}
        vendor.manifest_path().write_text(json.dumps(manifest, indent=2) + "\n")
        self.stdout.write(self.style.SUCCESS(f"wrote {vendor.manifest_path()}"))
