// ReDoc over Hearth's own OpenAPI document (`/openapi.json`), served from this host.
window.addEventListener("DOMContentLoaded", () => {
  Redoc.init("/openapi.json", { hideDownloadButton: false }, document.getElementById("redoc"));
});
