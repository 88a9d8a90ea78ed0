"""The attachments API: uploads are checked and stored tenant-confined, downloads are safe, and
message parts must name an attachment of their session."""

from __future__ import annotations

import base64
import io

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image

from apps.conversations.models import Attachment, Message
from apps.tenancy.models import Role
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (8, 6)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture
def session_id(owner_client, agent) -> str:
    return owner_client.post("/api/sessions", {"agent": agent.name}, format="json").json()["id"]


def upload_multipart(client, session_id: str, name: str, data: bytes, content_type: str):
    return client.post(
        f"/api/sessions/{session_id}/attachments",
        {"file": SimpleUploadedFile(name, data, content_type=content_type)},
        format="multipart",
    )


def upload_json(client, session_id: str, name: str, data: bytes, mime_type: str = ""):
    body = {"filename": name, "data": base64.b64encode(data).decode()}
    if mime_type:
        body["mime_type"] = mime_type
    return client.post(f"/api/sessions/{session_id}/attachments", body, format="json")


def test_multipart_image_upload_is_stored_and_streams_back_inline(owner_client, session_id, tenant):
    png = image_bytes()
    response = upload_multipart(owner_client, session_id, "red.png", png, "image/png")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["ref"].startswith("att_")
    assert (body["mime_type"], body["size"], body["filename"], body["width"], body["height"]) == (
        "image/png",
        len(png),
        "red.png",
        8,
        6,
    )
    stored = Attachment.objects.get(ref=body["ref"])
    path = settings.ATTACHMENT_ROOT / str(tenant.pk) / str(stored.pk)
    assert path.read_bytes() == png

    download = owner_client.get(f"/api/sessions/{session_id}/attachments/{body['ref']}")
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == png
    assert download["Content-Type"] == "image/png"
    assert download["X-Content-Type-Options"] == "nosniff"
    assert download["Content-Disposition"].startswith("inline")
    assert "sandbox" in download["Content-Security-Policy"]


def test_json_text_upload_downloads_as_an_attachment_never_inline(owner_client, session_id):
    html = b"<html><script>alert(1)</script></html>"
    response = upload_json(owner_client, session_id, "page.txt", html, "text/plain")
    assert response.status_code == 201, response.json()
    download = owner_client.get(f"/api/sessions/{session_id}/attachments/{response.json()['ref']}")
    assert download["Content-Disposition"].startswith("attachment")
    assert 'filename="page.txt"' in download["Content-Disposition"]
    assert download["Content-Type"] == "text/plain"
    assert download["X-Content-Type-Options"] == "nosniff"
    assert b"".join(download.streaming_content) == html


def test_the_type_is_guessed_from_the_name_when_none_is_given(owner_client, session_id):
    response = upload_json(owner_client, session_id, "notes.md", b"# Title\n")
    assert response.status_code == 201, response.json()
    assert response.json()["mime_type"] == "text/markdown"


def test_list_shows_the_sessions_attachments_paginated(owner_client, session_id):
    first = upload_json(owner_client, session_id, "a.txt", b"a", "text/plain").json()["ref"]
    second = upload_json(owner_client, session_id, "b.csv", b"x,y\n1,2\n", "text/csv").json()["ref"]
    listed = owner_client.get(f"/api/sessions/{session_id}/attachments").json()
    assert listed["count"] == 2
    assert [a["ref"] for a in listed["results"]] == [first, second]


def test_a_client_path_never_becomes_the_storage_path(owner_client, session_id, tenant):
    response = upload_json(owner_client, session_id, "../../../etc/passwd.txt", b"root", "text/plain")
    assert response.status_code == 201
    assert response.json()["filename"] == "passwd.txt"
    stored = Attachment.objects.get(ref=response.json()["ref"])
    files = list((settings.ATTACHMENT_ROOT / str(tenant.pk)).iterdir())
    assert [f.name for f in files] == [str(stored.pk)]


@pytest.mark.parametrize(
    ("name", "data", "mime_type", "status"),
    [
        ("tool.exe", b"MZ\x90\x00", "application/x-msdownload", 415),
        ("page.html", b"<html></html>", "text/html", 415),
        ("fake.png", b"this is not a png", "image/png", 422),
        ("photo.png", image_bytes("JPEG"), "image/png", 422),
        ("latin1.txt", "caf\u00e9".encode("latin-1"), "text/plain", 422),
        ("report.pdf", b"not a pdf", "application/pdf", 422),
    ],
)
def test_refused_uploads_say_why(owner_client, session_id, name, data, mime_type, status):
    response = upload_json(owner_client, session_id, name, data, mime_type)
    assert response.status_code == status, response.json()
    assert response.json()["error"]
    assert response.json()["message"]
    assert not Attachment.objects.exists()


def test_an_empty_file_is_refused(owner_client, session_id):
    response = upload_multipart(owner_client, session_id, "empty.txt", b"", "text/plain")
    assert response.status_code == 422
    assert "empty" in response.json()["message"]


def test_an_image_that_is_not_one_is_refused_through_multipart_too(owner_client, session_id):
    response = upload_multipart(owner_client, session_id, "x.gif", b"GIF89a but not really", "image/gif")
    assert response.status_code == 422
    assert "image" in response.json()["message"]


@pytest.mark.parametrize(
    "body",
    [
        {"filename": "a.txt", "data": "***not base64***", "mime_type": "text/plain"},
        {"data": "aGk="},
        {"filename": "a.txt", "data": "aGk=", "path": "/etc"},
    ],
)
def test_malformed_json_uploads_are_400(owner_client, session_id, body):
    response = owner_client.post(f"/api/sessions/{session_id}/attachments", body, format="json")
    assert response.status_code == 400
    assert response.json()["fields"]


def test_multipart_without_a_file_field_is_400(owner_client, session_id):
    response = owner_client.post(f"/api/sessions/{session_id}/attachments", {"other": "x"}, format="multipart")
    assert response.status_code == 400
    assert "file" in response.json()["fields"]


def test_over_the_attachment_limit_is_413(owner_client, session_id, settings):
    settings.ATTACHMENT_MAX_BYTES = 1000
    assert upload_json(owner_client, session_id, "big.txt", b"a" * 1001, "text/plain").status_code == 413
    too_big = upload_multipart(owner_client, session_id, "big.txt", b"a" * 1001, "text/plain")
    assert too_big.status_code == 413
    assert "1000" in too_big.json()["message"]
    assert upload_json(owner_client, session_id, "ok.txt", b"a" * 1000, "text/plain").status_code == 201


def test_uploads_may_exceed_the_global_body_cap_but_nothing_else_may(owner_client, session_id, settings):
    settings.MAX_BODY_BYTES = 2000
    settings.ATTACHMENT_MAX_BYTES = 100_000
    data = b"b" * 50_000
    assert upload_json(owner_client, session_id, "big.txt", data, "text/plain").status_code == 201
    assert upload_multipart(owner_client, session_id, "big2.txt", data, "text/plain").status_code == 201
    elsewhere = owner_client.post(f"/api/sessions/{session_id}/messages", {"text": "x" * 5000}, format="json")
    assert elsewhere.status_code == 413
    assert "MAX_BODY_BYTES" in elsewhere.json()["message"]
    # The upload route's own cap: ATTACHMENT_MAX_BYTES in base64 plus framing.
    huge = owner_client.post(
        f"/api/sessions/{session_id}/attachments",
        {"filename": "h.txt", "data": "a" * 200_000},
        format="json",
    )
    assert huge.status_code == 413
    assert "ATTACHMENT_MAX_BYTES" in huge.json()["message"]


def test_a_viewer_reads_but_cannot_upload_or_delete(tenant, make_client, owner_client, session_id):
    ref = upload_json(owner_client, session_id, "a.txt", b"hello", "text/plain").json()["ref"]
    viewer = make_client(tenant, role=Role.VIEWER)
    refused = upload_json(viewer, session_id, "b.txt", b"x", "text/plain")
    assert refused.status_code == 403
    assert "member" in refused.json()["message"]
    assert viewer.get(f"/api/sessions/{session_id}/attachments").json()["count"] == 1
    assert viewer.get(f"/api/sessions/{session_id}/attachments/{ref}").status_code == 200
    assert viewer.delete(f"/api/sessions/{session_id}/attachments/{ref}").status_code == 403


def test_another_tenants_session_and_refs_are_404(owner_client, session_id, other_tenant, make_client):
    ref = upload_json(owner_client, session_id, "a.txt", b"secret", "text/plain").json()["ref"]
    stranger = make_client(other_tenant, role=Role.OWNER)
    assert stranger.get(f"/api/sessions/{session_id}/attachments").status_code == 404
    assert stranger.get(f"/api/sessions/{session_id}/attachments/{ref}").status_code == 404
    assert upload_json(stranger, session_id, "b.txt", b"x", "text/plain").status_code == 404
    assert stranger.delete(f"/api/sessions/{session_id}/attachments/{ref}").status_code == 404


def test_a_ref_is_found_only_in_its_own_session(owner_client, session_id, agent):
    ref = upload_json(owner_client, session_id, "a.txt", b"secret", "text/plain").json()["ref"]
    other = owner_client.post("/api/sessions", {"agent": agent.name}, format="json").json()["id"]
    assert owner_client.get(f"/api/sessions/{other}/attachments/{ref}").status_code == 404


def test_delete_removes_the_row_and_the_file(owner_client, session_id, tenant, django_capture_on_commit_callbacks):
    ref = upload_json(owner_client, session_id, "a.txt", b"bye", "text/plain").json()["ref"]
    path = settings.ATTACHMENT_ROOT / str(tenant.pk) / str(Attachment.objects.get(ref=ref).pk)
    assert path.exists()
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.delete(f"/api/sessions/{session_id}/attachments/{ref}")
    assert response.status_code == 204
    assert not path.exists()
    assert owner_client.get(f"/api/sessions/{session_id}/attachments/{ref}").status_code == 404


def test_deleting_the_session_removes_its_files(owner_client, session_id, tenant, django_capture_on_commit_callbacks):
    ref = upload_json(owner_client, session_id, "a.txt", b"bye", "text/plain").json()["ref"]
    path = settings.ATTACHMENT_ROOT / str(tenant.pk) / str(Attachment.objects.get(ref=ref).pk)
    with django_capture_on_commit_callbacks(execute=True):
        assert owner_client.delete(f"/api/sessions/{session_id}").status_code == 204
    assert not path.exists()


def test_deleting_the_tenant_removes_its_files(owner_client, session_id, tenant, django_capture_on_commit_callbacks):
    ref = upload_json(owner_client, session_id, "a.txt", b"bye", "text/plain").json()["ref"]
    path = settings.ATTACHMENT_ROOT / str(tenant.pk) / str(Attachment.objects.get(ref=ref).pk)
    assert path.exists()
    with django_capture_on_commit_callbacks(execute=True):
        tenant.delete()
    assert not path.exists()
    assert not path.parent.exists()


def test_the_dashboard_session_uploads_with_a_csrf_token_and_not_without(tenant, session_id):
    user = UserFactory()
    MembershipFactory(tenant=tenant, user=user, role=Role.MEMBER)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    url = f"/api/sessions/{session_id}/attachments"
    file = SimpleUploadedFile("a.txt", b"from the browser", content_type="text/plain")
    assert browser.post(url, {"file": file}).status_code == 403
    token = "a" * 32
    browser.cookies["csrftoken"] = token
    file = SimpleUploadedFile("a.txt", b"from the browser", content_type="text/plain")
    accepted = browser.post(url, {"file": file}, HTTP_X_CSRFTOKEN=token)
    assert accepted.status_code == 201, accepted.content
    assert Attachment.objects.get(ref=accepted.json()["ref"]).uploaded_by == user
    assert browser.get(f"{url}/{accepted.json()['ref']}").status_code == 200


# --- message parts -------------------------------------------------------------------------------


def test_a_message_part_takes_its_type_and_name_from_the_attachment(owner_client, session_id):
    ref = upload_multipart(owner_client, session_id, "red.png", image_bytes(), "image/png").json()["ref"]
    response = owner_client.post(
        f"/api/sessions/{session_id}/messages",
        {"parts": [{"type": "text", "text": "look"}, {"type": "image", "ref": ref, "mime_type": "text/html"}]},
        format="json",
    )
    assert response.status_code == 202, response.json()
    part = Message.objects.get(pk=response.json()["message_id"]).parts[1]
    assert part == {"type": "image", "ref": ref, "mime_type": "image/png", "filename": "red.png", "size": part["size"]}


def test_a_ref_of_another_session_or_none_at_all_is_refused(owner_client, session_id, agent):
    other = owner_client.post("/api/sessions", {"agent": agent.name}, format="json").json()["id"]
    ref = upload_json(owner_client, other, "a.txt", b"x", "text/plain").json()["ref"]
    for bad in (ref, "att_doesnotexist"):
        response = owner_client.post(
            f"/api/sessions/{session_id}/messages",
            {"parts": [{"type": "text", "text": "read"}, {"type": "file", "ref": bad}]},
            format="json",
        )
        assert response.status_code == 400
        assert "No attachment" in response.json()["fields"]["parts"]["1"][0]
    assert not Message.objects.filter(session_id=session_id).exists()


def test_an_image_part_must_name_an_image(owner_client, session_id):
    ref = upload_json(owner_client, session_id, "a.txt", b"x", "text/plain").json()["ref"]
    response = owner_client.post(
        f"/api/sessions/{session_id}/messages", {"parts": [{"type": "image", "ref": ref}]}, format="json"
    )
    assert response.status_code == 400
    assert "`file` part" in response.json()["fields"]["parts"]["0"][0]
