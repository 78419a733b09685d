"""Stored files: uploaded photos and documents, and resolving a method's file argument to one."""

from __future__ import annotations

import struct
from typing import Any

from sandbox.botapi.base import _ServerBase
from sandbox.botapi.errors import ApiError
from sandbox.botapi.state import ApiCall, StoredFile, UploadedPart

PHOTO_BYTES_LIMIT = 10 * 1024 * 1024
DOCUMENT_BYTES_LIMIT = 50 * 1024 * 1024


def _image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height of a PNG, JPEG, GIF or WebP image from its header; None when unknown."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return struct.unpack("<HH", data[6:10])
    if data[:4] == b"RIFF" and data[8:16] == b"WEBPVP8 " and len(data) >= 30:
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if data[:2] == b"\xff\xd8":
        i, n = 2, len(data)
        while i + 9 < n:
            if data[i] != 0xFF:
                i += 1
                continue
            marker = data[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
                i += 1 if marker == 0xFF else 2
                continue
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                h, w = struct.unpack(">HH", data[i + 5 : i + 9])
                return w, h
            i += 2 + struct.unpack(">H", data[i + 2 : i + 4])[0]
    return None


class _FileStore(_ServerBase):
    """Uploads, file_ids and URL placeholders behind ``sendPhoto``, ``sendDocument`` and friends."""

    def _register_file(self, stored: StoredFile, *file_ids: str) -> None:
        for file_id in file_ids:
            self.files[file_id] = stored
        self._files_by_path[stored.file_path] = stored

    def _new_file_ids(self) -> tuple[int, str]:
        n = self._next_file
        self._next_file += 1
        return n, f"AQADstandin{n:07d}"

    def _store_photo(self, part: UploadedPart) -> StoredFile:
        if not part.data:
            raise ApiError(400, "Bad Request: file must be non-empty")
        if len(part.data) > PHOTO_BYTES_LIMIT:
            raise ApiError(413, "Request Entity Too Large")
        size = _image_size(part.data) or (800, 600)
        width, height = size
        if width + height > 10000 or min(width, height) == 0 or max(width, height) / min(width, height) > 20:
            raise ApiError(400, "Bad Request: PHOTO_INVALID_DIMENSIONS")
        n, unique = self._new_file_ids()
        ext = "png" if part.data[:4] == b"\x89PNG" else "jpg"
        stored = StoredFile(
            f"AgACAgIAAxkBstandin{n:07d}-full",
            unique,
            "photo",
            part.data,
            f"photos/file_{n}.{ext}",
            file_name=part.filename,
            mime_type=part.content_type or f"image/{'png' if ext == 'png' else 'jpeg'}",
            width=width,
            height=height,
        )
        sizes: list[dict[str, Any]] = []
        scale = 320 / max(width, height)
        if scale < 1:
            thumb_id = f"AgACAgIAAxkBstandin{n:07d}-thumb"
            sizes.append(
                {
                    "file_id": thumb_id,
                    "file_unique_id": f"{unique}-t",
                    "width": max(1, round(width * scale)),
                    "height": max(1, round(height * scale)),
                    "file_size": len(part.data),
                }
            )
        sizes.append(
            {
                "file_id": stored.file_id,
                "file_unique_id": unique,
                "width": width,
                "height": height,
                "file_size": len(part.data),
            }
        )
        stored.photo_sizes = sizes
        self._register_file(stored, *(size["file_id"] for size in sizes))
        self.uploads += 1
        return stored

    def _store_document(self, part: UploadedPart) -> StoredFile:
        if not part.data:
            raise ApiError(400, "Bad Request: file must be non-empty")
        if len(part.data) > DOCUMENT_BYTES_LIMIT:
            raise ApiError(413, "Request Entity Too Large")
        n, unique = self._new_file_ids()
        name = part.filename or f"file_{n}"
        suffix = name.rsplit(".", 1)[-1] if "." in name else "bin"
        stored = StoredFile(
            f"BQACAgIAAxkBstandin{n:07d}",
            unique,
            "document",
            part.data,
            f"documents/file_{n}.{suffix}",
            file_name=name,
            mime_type=part.content_type or "application/octet-stream",
        )
        self._register_file(stored, stored.file_id)
        self.document_uploads += 1
        return stored

    def _input_file(
        self, value: Any, files: dict[str, UploadedPart], field_name: str, kind: str, call: ApiCall
    ) -> StoredFile:
        part: UploadedPart | None = None
        if value is None:
            part = files.get(field_name)
            if part is None:
                raise ApiError(400, f"Bad Request: there is no {field_name} in the request")
        elif isinstance(value, str) and value.startswith("attach://"):
            part = files.get(value[len("attach://") :])
            if part is None:
                raise ApiError(400, f"Bad Request: file {value!r} not found in the request")
        if part is not None:
            call.media_source = "upload"
            return self._store_photo(part) if kind == "photo" else self._store_document(part)
        if not isinstance(value, str) or not value:
            raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        if value.startswith(("http://", "https://")):
            # No network here: remember the URL as an empty placeholder file.
            call.media_source = "url"
            n, unique = self._new_file_ids()
            placeholder = StoredFile(
                f"AgACAgIAAxkBstandin{n:07d}-url",
                unique,
                kind,
                b"",
                f"{kind}s/url_{n}",
                width=800,
                height=600,
            )
            if kind == "photo":
                placeholder.photo_sizes = [
                    {
                        "file_id": placeholder.file_id,
                        "file_unique_id": unique,
                        "width": 800,
                        "height": 600,
                    }
                ]
            self._register_file(placeholder, placeholder.file_id)
            return placeholder
        stored = self.files.get(value)
        if stored is None:
            raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        if stored.kind != kind:
            raise ApiError(
                400, f"Bad Request: can't use file of type {stored.kind.title()} as {kind.title()}"
            )
        call.media_source = "file_id"
        return stored
