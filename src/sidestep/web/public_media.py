"""The signed public addresses of post media, which Instagram, Threads and Pinterest fetch.

No login: the signature in the URL (made by `MediaHost` when the worker published) is the
permission, bound to the workspace and the file's hash. Anything else is 404.
"""

from __future__ import annotations

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse

from sidestep.channels.uploads import MIME_OF_EXTENSION, MediaHost, MediaStore


def install(app: FastAPI) -> None:
    app.state.media_host = MediaHost.from_settings(app.state.runtime.settings)
    app.add_api_route("/media/{workspace_id}/{ref}", public_media, methods=["GET"],
                      include_in_schema=False)


async def public_media(workspace_id: int, ref: str, request: Request,
                       sig: str = "") -> FileResponse:
    host: MediaHost = request.app.state.media_host
    path = MediaStore(host.data_dir, workspace_id=workspace_id).path(ref)
    if path is None or not host.verify(workspace_id, ref, sig):
        raise HTTPException(404, "no such file")
    media_type = MIME_OF_EXTENSION.get(ref.rsplit(".", 1)[-1], "application/octet-stream")
    return FileResponse(path, media_type=media_type, headers={
        "Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"})
